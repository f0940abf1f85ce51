#!/usr/bin/python3
"""Tests of deploy/: the chart and manifests (schema, security properties, content),
the host-service unit, and the host install scripts.

Run one group: test_deploy.py SchemaTest (see CMakeLists.txt for the list).
"""

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

SRC = pathlib.Path(os.environ.get("LBCSI_SOURCE_DIR",
                                  pathlib.Path(__file__).resolve().parents[2]))
DEPLOY = SRC / "deploy"


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


render_chart = load_module("render_chart", DEPLOY / "render-chart.py")
validate = load_module("validate_manifests", DEPLOY / "validate-manifests.py")

# Every optional branch of the chart switched on, so they are validated too.
ALL_ON = {
    "helper.mode": "container",
    "ephemeral.enabled": "true",
    "controller.jwtSecretName": "lb-csi-jwt",
    "controller.caBundleConfigMap": "lightos-ca",
    "controller.tlsServerName": "lightos.example.com",
    "controller.insecureSkipTlsVerify": "true",
    "controller.trustedClusters": "10.0.0.1:443,10.0.0.2:443;10.1.0.1:80|scheme:grpc",
    "node.trustedClusters": "10.1.0.1:80|scheme:grpc",
    "controller.nodeSelector": "{kubernetes.io/os: linux}",
    "controller.tolerations": "[{key: node-role.kubernetes.io/control-plane, operator: Exists,"
                              " effect: NoSchedule}]",
    "node.nodeSelector": "{kubernetes.io/os: linux}",
    "helper.ctrlLossTmo": "1800",
    "helper.fastIoFailTmo": "30",
    "helper.simDataDir": "/var/lib/lbcsi-sim",
}


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def manifest(name):
    return docs((DEPLOY / "manifests" / name).read_text())


def pod_specs(objs):
    """(object, pod spec) for every workload."""
    for o in objs:
        if o["kind"] in ("Deployment", "DaemonSet"):
            yield o, o["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            yield o, o["spec"]


def containers(spec):
    return spec.get("initContainers", []) + spec["containers"]


def find(objs, kind, name):
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(hits) == 1, f"{kind}/{name}: {len(hits)} found"
    return hits[0]


class SchemaTest(unittest.TestCase):
    """Every object validates against the API schema subset; unknown fields are rejected."""

    def setUp(self):
        self.schema = validate.load_schema()

    def assert_valid(self, text, label):
        count, failures = validate.validate_text(self.schema, text, label)
        self.assertEqual(failures, [])
        self.assertGreater(count, 0)
        return count

    def test_committed_manifests(self):
        for f in sorted((DEPLOY / "manifests").glob("*.yaml")):
            n = self.assert_valid(f.read_text(), f.name)
            print(f"{f.name}: {n} objects valid")

    def test_examples(self):
        files = sorted((DEPLOY / "examples").glob("*.yaml"))
        self.assertGreaterEqual(len(files), 8)
        for f in files:
            self.assert_valid(f.read_text(), f.name)

    def test_every_optional_branch(self):
        self.assert_valid(render_chart.render(overrides=ALL_ON), "all-on")

    def test_unknown_fields_are_rejected(self):
        objs = manifest("lbcsi-container-mode.yaml")
        ds = find(objs, "DaemonSet", "lbcsi-node")
        cases = [
            ("spec", "replica", 1),
            ("spec.template.spec", "hostNetwrok", True),
            ("spec.template.spec.containers.0", "securityContxt", {}),
            ("spec.template.spec.containers.0.securityContext", "priviledged", True),
            ("spec.template.spec.volumes.0.hostPath", "kind", "Directory"),
        ]
        for path, key, value in cases:
            broken = yaml.safe_load(yaml.safe_dump(ds))
            node = broken
            for part in path.split("."):
                node = node[int(part)] if part.isdigit() else node[part]
            node[key] = value
            errors = validate.validate_object(self.schema, broken)
            self.assertTrue(any(key in e for e in errors), f"{path}.{key} accepted: {errors}")

    def test_unknown_kind_is_rejected(self):
        errors = validate.validate_object(
            self.schema, {"apiVersion": "v1", "kind": "Nonsense", "metadata": {"name": "x"}})
        self.assertTrue(errors)


class SecurityTest(unittest.TestCase):
    """Only the container-mode helper DaemonSet is privileged or holds a capability."""

    def check_objects(self, objs, label):
        checked = 0
        for obj, spec in pod_specs(objs):
            is_helper = obj["kind"] == "DaemonSet" and obj["metadata"]["name"] == "lbcsi-helper"
            for c in containers(spec):
                sc = c.get("securityContext", {})
                where = f"{label}: {obj['kind']}/{obj['metadata']['name']}/{c['name']}"
                checked += 1
                if is_helper:
                    continue
                self.assertFalse(sc.get("privileged", False), where)
                self.assertEqual(sc.get("capabilities", {}).get("drop"), ["ALL"], where)
                self.assertEqual(sc.get("capabilities", {}).get("add", []), [], where)
                self.assertIs(sc.get("allowPrivilegeEscalation"), False, where)
                self.assertIs(sc.get("readOnlyRootFilesystem"), True, where)
                self.assertIs(sc.get("runAsNonRoot", spec["securityContext"].get("runAsNonRoot")),
                              True, where)
                uid = sc.get("runAsUser", spec["securityContext"].get("runAsUser"))
                self.assertIsInstance(uid, int, where)
                self.assertGreater(uid, 0, where)
                seccomp = sc.get("seccompProfile") or spec["securityContext"].get("seccompProfile")
                self.assertEqual(seccomp, {"type": "RuntimeDefault"}, where)
            if not is_helper:
                for key in ("hostNetwork", "hostPID", "hostIPC"):
                    self.assertFalse(spec.get(key, False), f"{obj['metadata']['name']} {key}")
                for v in spec.get("volumes", []):
                    self.assertNotIn(v.get("hostPath", {}).get("path"), ("/", "/dev", "/sys",
                                                                        "/proc", "/var/lib/kubelet"))
                for c in containers(spec):
                    for m in c.get("volumeMounts", []):
                        self.assertNotEqual(m.get("mountPropagation"), "Bidirectional", c["name"])
        return checked

    def test_host_mode_has_no_privilege_at_all(self):
        objs = manifest("lbcsi-host-mode.yaml")
        self.assertEqual([o for o in objs if o["metadata"]["name"] == "lbcsi-helper"], [])
        self.assertEqual(self.check_objects(objs, "host-mode"), 9)

    def test_container_mode(self):
        objs = manifest("lbcsi-container-mode.yaml")
        self.check_objects(objs, "container-mode")
        helper = find(objs, "DaemonSet", "lbcsi-helper")
        spec = helper["spec"]["template"]["spec"]
        self.assertTrue(spec["hostNetwork"])
        main = [c for c in spec["containers"] if c["name"] == "lbcsi-helper"][0]
        self.assertTrue(main["securityContext"]["privileged"])
        mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
        self.assertEqual(mounts["/var/lib/kubelet"]["mountPropagation"], "Bidirectional")
        self.assertIn("/dev", mounts)
        self.assertIn("/sys", mounts)
        # Without the node's /etc/selinux/config libselinux reports SELinux off and context=
        # labels would be dropped on SELinux nodes.
        self.assertTrue(mounts["/etc/selinux"]["readOnly"])
        self.assertIn("--transport=nvme", main["args"])
        init = spec["initContainers"][0]
        self.assertEqual(init["securityContext"]["capabilities"], {"drop": ["ALL"],
                                                                   "add": ["CHOWN"]})

    def test_all_on_rendering(self):
        self.check_objects(docs(render_chart.render(overrides=ALL_ON)), "all-on")

    def test_examples(self):
        for f in ["pvc.yaml", "raw-block.yaml", "ephemeral-pod.yaml"]:
            for obj, spec in pod_specs(docs((DEPLOY / "examples" / f).read_text())):
                for c in containers(spec):
                    self.assertFalse(c.get("securityContext", {}).get("privileged", False))

    def test_checker_catches_a_privileged_container(self):
        objs = manifest("lbcsi-host-mode.yaml")
        find(objs, "DaemonSet", "lbcsi-node")["spec"]["template"]["spec"]["containers"][0][
            "securityContext"]["privileged"] = True
        with self.assertRaises(AssertionError):
            self.check_objects(objs, "mutated")


class ContentTest(unittest.TestCase):
    """The objects say what the design asks for."""

    def setUp(self):
        self.objs = manifest("lbcsi-host-mode.yaml")

    def test_csidriver(self):
        d = find(self.objs, "CSIDriver", "csi.lightbitslabs.com")["spec"]
        self.assertEqual(d, {"attachRequired": True, "podInfoOnMount": True,
                             "volumeLifecycleModes": ["Persistent", "Ephemeral"],
                             "fsGroupPolicy": "File", "seLinuxMount": True})

    def test_controller(self):
        dep = find(self.objs, "Deployment", "lbcsi-controller")
        self.assertEqual(dep["spec"]["replicas"], 2)
        spec = dep["spec"]["template"]["spec"]
        self.assertEqual(spec["priorityClassName"], "system-cluster-critical")
        by_name = {c["name"]: c for c in spec["containers"]}
        self.assertEqual(set(by_name), {"lbcsi-controller", "csi-provisioner", "csi-attacher",
                                        "csi-resizer", "csi-snapshotter", "livenessprobe"})
        self.assertIn("--extra-create-metadata", by_name["csi-provisioner"]["args"])
        for s in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter"):
            self.assertIn("--leader-election", by_name[s]["args"], s)
            self.assertIn("--timeout=120s", by_name[s]["args"], s)
        # No privilege-free sidecar shares a uid with anyone but its pod.
        self.assertEqual(spec["serviceAccountName"], "lbcsi-controller")

    def test_node(self):
        ds = find(self.objs, "DaemonSet", "lbcsi-node")
        spec = ds["spec"]["template"]["spec"]
        self.assertEqual(spec["priorityClassName"], "system-node-critical")
        self.assertFalse(spec.get("hostNetwork", False))
        self.assertIs(spec["automountServiceAccountToken"], False)
        self.assertEqual(spec["tolerations"], [{"operator": "Exists"}])
        names = [c["name"] for c in spec["containers"]]
        self.assertEqual(names, ["lbcsi-agent", "node-driver-registrar", "livenessprobe"])
        paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
        self.assertEqual(paths["plugin-dir"], "/var/lib/kubelet/plugins/csi.lightbitslabs.com")
        # Our own directory below plugins_registry: the agent's uid never owns the shared one.
        self.assertEqual(paths["registration-dir"],
                         "/var/lib/kubelet/plugins_registry/csi.lightbitslabs.com")
        self.assertEqual(paths["helper-socket-dir"], "/run/lbcsi")
        agent = spec["containers"][0]
        self.assertIn("--helper-socket=/run/lbcsi/helper.sock", agent["args"])
        sock = [m for m in agent["volumeMounts"] if m["name"] == "helper-socket-dir"][0]
        self.assertTrue(sock["readOnly"])

    def test_no_two_listeners_share_a_port_in_a_pod(self):
        # Containers of one pod share its network namespace: two listeners on one port
        # crash-loop whichever binds second (the controller's metrics once defaulted to the
        # livenessprobe's 9808). A flag left out means the binary's default.
        controller_default = re.search(r'metrics_address = "[^"]*:(\d+)"',
                                       (SRC / "controller" / "main.cc").read_text())
        self.assertIsNotNone(controller_default, "controller/main.cc default metrics address")
        defaults = {"lbcsi-controller": int(controller_default.group(1)), "livenessprobe": 9808}
        for objs in (manifest("lbcsi-host-mode.yaml"), manifest("lbcsi-container-mode.yaml"),
                     docs(render_chart.render(overrides=ALL_ON))):
            for obj, spec in pod_specs(objs):
                if spec.get("hostNetwork"):
                    continue
                seen = {}
                for c in spec["containers"]:
                    ports = set()
                    for a in c.get("args", []):
                        m = re.match(r"--(health-port|metrics-address|http-endpoint)=(.*)", a)
                        if m:
                            ports.add(int(m.group(2).rsplit(":", 1)[-1]))
                    if not ports and c["name"] in defaults:
                        ports.add(defaults[c["name"]])
                    for p in ports:
                        self.assertNotIn(p, seen, f"{obj['metadata']['name']}: {c['name']} and "
                                                  f"{seen.get(p)} both listen on {p}")
                        seen[p] = c["name"]
                # Every named containerPort is one some container listens on.
                for c in spec["containers"]:
                    for p in c.get("ports", []):
                        self.assertIn(p["containerPort"], seen,
                                      f"{obj['metadata']['name']}/{c['name']}: port {p}")

    def test_sidecars_may_read_volume_attributes_classes(self):
        # The sidecars' current releases watch VolumeAttributesClasses (ModifyVolume, and
        # mutable parameters at CreateVolume); without the rule their informers never sync.
        roles = {o["metadata"]["name"]: o for o in self.objs if o["kind"] == "ClusterRole"}
        for name in ("lbcsi-provisioner", "lbcsi-resizer"):
            rules = [r for r in roles[name]["rules"]
                     if "volumeattributesclasses" in r["resources"]]
            self.assertEqual(len(rules), 1, name)
            self.assertEqual(rules[0]["apiGroups"], ["storage.k8s.io"], name)
            self.assertEqual(rules[0]["verbs"], ["get", "list", "watch"], name)

    def test_rbac_is_per_sidecar_and_least_privilege(self):
        roles = {o["metadata"]["name"]: o for o in self.objs if o["kind"] == "ClusterRole"}
        self.assertEqual(set(roles), {"lbcsi-provisioner", "lbcsi-attacher", "lbcsi-resizer",
                                      "lbcsi-snapshotter"})
        for name, role in roles.items():
            for rule in role["rules"]:
                self.assertNotIn("*", rule.get("verbs", []), name)
                self.assertNotIn("*", rule.get("resources", []), name)
                self.assertNotIn("*", rule.get("apiGroups", []), name)
                if "secrets" in rule.get("resources", []):
                    self.assertEqual(rule["verbs"], ["get"], name)
        bindings = [o for o in self.objs if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
        self.assertEqual(len(bindings), 5)
        for b in bindings:
            self.assertEqual(b["subjects"], [{"kind": "ServiceAccount", "name": "lbcsi-controller",
                                              "namespace": "kube-system"}])

    def test_examples_use_the_shipped_formats(self):
        ex = {f.name: docs(f.read_text()) for f in (DEPLOY / "examples").glob("*.yaml")}
        secret = ex["secret-jwt.yaml"][0]
        self.assertEqual(secret["type"], "lightbitslabs.com/jwt")
        self.assertEqual(list(secret["stringData"]), ["jwt"])
        sc = ex["storageclass.yaml"][0]
        self.assertTrue(sc["allowVolumeExpansion"])
        for key in ("mgmt-endpoint", "replica-count", "compression", "project-name",
                    "mgmt-scheme", "qos-policy-name", "host-encryption"):
            self.assertIn(key, sc["parameters"])
        for op in ("provisioner", "controller-publish", "node-stage", "controller-expand"):
            self.assertIn(f"csi.storage.k8s.io/{op}-secret-name", sc["parameters"])
            self.assertIn(f"csi.storage.k8s.io/{op}-secret-namespace", sc["parameters"])
        pv = ex["static-pv.yaml"][0]
        handle = pv["spec"]["csi"]["volumeHandle"]
        self.assertRegex(handle, r"^mgmt:[^|]+\|nguid:[0-9a-f-]{36}(\|proj:[a-z0-9.-]+)?"
                                 r"(\|scheme:grpcs?)?$")
        self.assertLessEqual(len(handle), 128)
        eps = handle.split("|")[0][len("mgmt:"):].split(",")
        self.assertEqual(eps, sorted(set(eps)))


class ChartTest(unittest.TestCase):
    """The chart and the committed manifests agree; every value is used and documented."""

    def test_manifests_in_step(self):
        out = subprocess.run([sys.executable, str(DEPLOY / "render-chart.py"), "--check"],
                             capture_output=True, text=True)
        print(out.stdout)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def test_check_detects_drift(self):
        with tempfile.TemporaryDirectory() as tmp:
            for f in (DEPLOY / "manifests").glob("*.yaml"):
                shutil.copy(f, tmp)
            p = pathlib.Path(tmp) / "lbcsi-host-mode.yaml"
            p.write_text(p.read_text().replace("replicas: 2", "replicas: 3"))
            out = subprocess.run([sys.executable, str(DEPLOY / "render-chart.py"), "--check",
                                  "--manifests", tmp], capture_output=True, text=True)
            self.assertEqual(out.returncode, 1, out.stdout)

    def test_every_value_is_used_and_documented(self):
        text = (DEPLOY / "helm" / "lbcsi" / "values.yaml").read_text()
        templates = "".join(p.read_text() for p in (DEPLOY / "helm/lbcsi/templates").glob("*"))
        lines = text.splitlines()

        def leaves(node, prefix=""):
            for k, v in node.items():
                if isinstance(v, dict) and v:
                    yield from leaves(v, f"{prefix}{k}.")
                else:
                    yield f"{prefix}{k}"

        for path in leaves(yaml.safe_load(text)):
            self.assertIn(f".Values.{path}", templates, f"{path} unused")
            key = path.split(".")[-1]
            idx = [i for i, l in enumerate(lines) if re.match(rf"\s*{re.escape(key)}:", l)]
            self.assertTrue(idx, path)
            # A comment on the line above, or above a run of keys (siblings or the parent
            # section) sharing it.
            i = idx[0] - 1
            while i >= 0 and re.match(r"\s*[A-Za-z]+:", lines[i]):
                i -= 1
            self.assertTrue(lines[i].strip().startswith("#"), f"{path} undocumented")

    def test_template_subset(self):
        tpl = "a: {{ .Values.x }}\n{{- if eq .Values.m \"c\" }}\nb: 1\n{{- else }}\nb: 2\n{{- end }}\n"
        with tempfile.TemporaryDirectory() as tmp:
            chart = pathlib.Path(tmp)
            (chart / "templates").mkdir()
            (chart / "Chart.yaml").write_text("name: t\nversion: 1.0.0\n")
            (chart / "values.yaml").write_text("x: 5\nm: c\ny: [1]\n")
            (chart / "templates" / "a.yaml").write_text(tpl)
            out = render_chart.render(chart)
            self.assertEqual(docs(out), [{"a": 5, "b": 1}])
            out = render_chart.render(chart, {"m": "d"})
            self.assertEqual(docs(out), [{"a": 5, "b": 2}])
            (chart / "templates" / "a.yaml").write_text("a: {{ .Values.nope }}\n")
            with self.assertRaises(render_chart.TemplateError):
                render_chart.render(chart)
            (chart / "templates" / "a.yaml").write_text("a: {{ include \"x\" . }}\n")
            with self.assertRaises(render_chart.TemplateError):
                render_chart.render(chart)


class FlagsTest(unittest.TestCase):
    """Every flag the deployment passes to our binaries is one they accept (CLI11 refuses
    unknown flags, so a stale flag would crash-loop the pod or the unit)."""

    BINARIES = {"lbcsi-helper": "LBCSI_HELPER_BIN", "lbcsi-agent": "LBCSI_AGENT_BIN",
                "lbcsi-controller": "LBCSI_CONTROLLER_BIN"}

    @classmethod
    def setUpClass(cls):
        cls.known = {}
        for name, env in cls.BINARIES.items():
            path = os.environ.get(env)
            if not path:
                raise unittest.SkipTest(f"{env} not set (ctest sets it when the binaries are built)")
            out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=60)
            cls.known[name] = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.stdout))
            assert len(cls.known[name]) > 3, f"{name} --help printed no flags: {out.stdout}"

    @staticmethod
    def flags(args):
        return {a.split("=", 1)[0] for a in args if a.startswith("--")}

    def check(self, binary, flags, where):
        unknown = flags - self.known[binary]
        self.assertFalse(unknown, f"{where}: {binary} has no flag(s) {sorted(unknown)}")

    def test_manifests_and_all_on_rendering(self):
        texts = {name: (DEPLOY / "manifests" / name).read_text()
                 for name in ("lbcsi-host-mode.yaml", "lbcsi-container-mode.yaml")}
        texts["all-on rendering"] = render_chart.render(overrides=ALL_ON)
        seen = set()
        for where, text in texts.items():
            for _, spec in pod_specs(docs(text)):
                for c in containers(spec):
                    if c["name"] in self.BINARIES:
                        seen.add(c["name"])
                        self.check(c["name"], self.flags(c.get("args", [])), where)
        self.assertEqual(seen, set(self.BINARIES))

    def test_systemd_unit_and_host_install(self):
        unit = (DEPLOY / "systemd" / "lbcsi-helper.service").read_text()
        exec_start = re.search(r"^ExecStart=(.*?)(?<!\\)$", unit, re.M | re.S).group(1)
        self.check("lbcsi-helper", self.flags(exec_start.replace("\\\n", " ").split()),
                   "lbcsi-helper.service")
        install = (DEPLOY / "host" / "install.sh").read_text()
        args = re.search(r'LBCSI_HELPER_ARGS=\\"([^"\\]*)', install).group(1)
        self.assertIn("--plugin-socket-dir", args)
        self.check("lbcsi-helper", self.flags(args.split()), "install.sh")

    def test_checker_catches_a_stale_flag(self):
        with self.assertRaises(AssertionError):
            self.check("lbcsi-helper", {"--no-such-flag"}, "test")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[1:])
