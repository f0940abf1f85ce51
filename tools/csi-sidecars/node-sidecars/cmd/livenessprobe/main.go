// livenessprobe for the test cluster: answers kubelet's HTTP liveness checks with the CSI
// driver's Probe, as the upstream livenessprobe sidecar does (whose module cannot be fetched
// from the Go module proxy: its v2 tags lack a /v2 module path).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	csiAddress := flag.String("csi-address", "/csi/csi.sock", "the driver's CSI socket")
	healthPort := flag.Int("health-port", 9808, "TCP port of /healthz")
	probeTimeout := flag.Duration("probe-timeout", time.Second, "deadline of each Probe")
	flag.Parse()
	conn, err := grpc.NewClient("unix://"+*csiAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("CSI socket %s: %v", *csiAddress, err)
	}
	identity := csi.NewIdentityClient(conn)
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), *probeTimeout)
		defer cancel()
		resp, err := identity.Probe(ctx, &csi.ProbeRequest{})
		switch {
		case err != nil:
			http.Error(w, fmt.Sprintf("Probe: %v", err), http.StatusInternalServerError)
		case resp.GetReady() != nil && !resp.GetReady().GetValue():
			http.Error(w, "driver not ready", http.StatusInternalServerError)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	log.Printf("serving /healthz on :%d for %s", *healthPort, *csiAddress)
	log.Fatal(http.ListenAndServe(fmt.Sprintf(":%d", *healthPort), nil))
}
