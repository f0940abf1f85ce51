// csi-node-driver-registrar for the test cluster: registers a CSI driver with kubelet's
// plugin watcher, as the upstream node-driver-registrar does. The upstream module cannot be
// fetched from the Go module proxy (its v2 tags lack a /v2 module path), so tests/k8s
// builds this small equivalent; the chart's default image stays the upstream one.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type registrar struct {
	registerapi.UnimplementedRegistrationServer
	driver, endpoint string
}

func (r *registrar) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: r.driver, Endpoint: r.endpoint,
		SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if !s.PluginRegistered {
		// kubelet refused the driver: restart and try again, as upstream does.
		log.Fatalf("kubelet did not register %s: %s", r.driver, s.Error)
	}
	log.Printf("kubelet registered %s", r.driver)
	return &registerapi.RegistrationStatusResponse{}, nil
}

func main() {
	csiAddress := flag.String("csi-address", "/csi/csi.sock", "the driver's CSI socket in this container")
	kubeletPath := flag.String("kubelet-registration-path", "", "the driver's CSI socket on the host, for kubelet")
	regDir := flag.String("plugin-registration-path", "/registration", "kubelet's plugin registration directory")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long to wait for the driver")
	flag.Parse()
	if *kubeletPath == "" {
		log.Fatal("--kubelet-registration-path is required")
	}
	conn, err := grpc.NewClient("unix://"+*csiAddress, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatalf("CSI socket %s: %v", *csiAddress, err)
	}
	var driver string
	deadline := time.Now().Add(*timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			driver = info.GetName()
			break
		}
		if time.Now().After(deadline) {
			log.Fatalf("GetPluginInfo on %s: %v", *csiAddress, err)
		}
		log.Printf("waiting for the driver: %v", err)
		time.Sleep(2 * time.Second)
	}
	conn.Close()
	sock := filepath.Join(*regDir, driver+"-reg.sock")
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		log.Fatalf("removing stale %s: %v", sock, err)
	}
	lis, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatalf("listening on %s: %v", sock, err)
	}
	srv := grpc.NewServer()
	registerapi.RegisterRegistrationServer(srv, &registrar{driver: driver, endpoint: *kubeletPath})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		srv.Stop()
		os.Remove(sock)
		os.Exit(0)
	}()
	log.Printf("registration socket %s for %s at %s", sock, driver, *kubeletPath)
	if err := srv.Serve(lis); err != nil {
		log.Fatal(err)
	}
}
