package chart_test

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestWebhookPodIsRestricted: the webhook pod meets the restricted Pod
// Security profile, is Ready only through /readyz on the health port,
// spreads its replicas and requests resources.
func TestWebhookPodIsRestricted(t *testing.T) {
	for _, aa := range []string{"soft", "hard"} {
		t.Run(aa, func(t *testing.T) {
			r := mustRender(t, defaultRelease, values("webhook.antiAffinity", aa))
			dep := typed[appsv1.Deployment](t, r.oneComponent(t, "Deployment", "webhook"))
			spec := dep.Spec.Template.Spec
			psc := spec.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext %+v: want runAsNonRoot, uid 65532, RuntimeDefault seccomp", psc)
			}
			if spec.HostNetwork || spec.HostPID || spec.HostIPC {
				t.Error("webhook pod shares a host namespace")
			}
			for _, v := range spec.Volumes {
				if v.HostPath != nil {
					t.Errorf("webhook pod mounts host path %s", v.HostPath.Path)
				}
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
				!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				len(sc.Capabilities.Add) != 0 || (sc.Privileged != nil && *sc.Privileged) {
				t.Errorf("container securityContext %+v: want no escalation, read-only root, all capabilities dropped", sc)
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "health" {
				t.Errorf("readiness probe %+v: want GET /readyz on the health port", p)
			}
			if !hasPort(c, "health", 8081) || !hasPort(c, "webhook", 9443) || !hasPort(c, "metrics", 8080) {
				t.Errorf("ports %+v: want webhook 9443, metrics 8080, health 8081", c.Ports)
			}
			if !slices.Contains(c.Args, "--health-probe-bind-address=:8081") || !slices.Contains(c.Args, "--port=9443") {
				t.Errorf("args %v do not bind the ports the pod declares", c.Args)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("resources %+v: want cpu and memory requests", c.Resources)
			}
			aff := spec.Affinity
			if aff == nil || aff.PodAntiAffinity == nil {
				t.Fatal("no pod anti-affinity")
			}
			hard, soft := aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
			var term corev1.PodAffinityTerm
			switch {
			case aa == "hard" && len(hard) == 1 && len(soft) == 0:
				term = hard[0]
			case aa == "soft" && len(soft) == 1 && len(hard) == 0:
				term = soft[0].PodAffinityTerm
			default:
				t.Fatalf("antiAffinity=%s rendered required=%d preferred=%d", aa, len(hard), len(soft))
			}
			if term.TopologyKey != "kubernetes.io/hostname" || !mapsEqual(term.LabelSelector.MatchLabels, dep.Spec.Selector.MatchLabels) {
				t.Errorf("anti-affinity term %+v does not spread the webhook pods over nodes", term)
			}

			svc := typed[corev1.Service](t, r.one(t, "Service", "palisade-webhook"))
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort.String() != "webhook" ||
				!mapsEqual(svc.Spec.Selector, dep.Spec.Selector.MatchLabels) {
				t.Errorf("webhook Service %+v: want 443 -> the webhook port of the webhook pods", svc.Spec)
			}
		})
	}
}

// TestEnforcerPod: host network, exactly BPF, NET_ADMIN and PERFMON, never
// SYS_ADMIN in the long-running container, the host's bpffs, every node,
// the node name from the downward API, a bounded rolling update.
func TestEnforcerPod(t *testing.T) {
	for _, mount := range []bool{false, true} {
		name := map[bool]string{false: "bpffs mounted by the host", true: "bpffs mounted by an init container"}[mount]
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, defaultRelease, values("enforcer.bpffs.mount", mount, "enforcer.updateStrategy.maxUnavailable", "10%"))
			ds := typed[appsv1.DaemonSet](t, r.oneComponent(t, "DaemonSet", "enforcer"))
			spec := ds.Spec.Template.Spec
			if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
				t.Errorf("hostNetwork %t dnsPolicy %s: want host network with ClusterFirstWithHostNet", spec.HostNetwork, spec.DNSPolicy)
			}
			if spec.HostPID || spec.HostIPC {
				t.Error("enforcer shares the host PID or IPC namespace")
			}
			if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
				t.Errorf("tolerations %+v: want one {operator: Exists} (every node)", spec.Tolerations)
			}
			if u := ds.Spec.UpdateStrategy; u.Type != appsv1.RollingUpdateDaemonSetStrategyType || u.RollingUpdate == nil ||
				u.RollingUpdate.MaxUnavailable == nil || u.RollingUpdate.MaxUnavailable.String() != "10%" {
				t.Errorf("update strategy %+v: want RollingUpdate with maxUnavailable 10%%", u)
			}
			c := spec.Containers[0]
			sc := c.SecurityContext
			want := []corev1.Capability{"BPF", "NET_ADMIN", "PERFMON"}
			if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Add, want) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("capabilities %+v: want drop ALL, add exactly %v", sc.Capabilities, want)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Error("the enforcer container is privileged")
			}
			if sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("securityContext %+v: want root (uid 0) with a read-only root filesystem", sc)
			}
			env := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
					env[e.Name] = e.ValueFrom.FieldRef.FieldPath
				}
			}
			if env["NODE_NAME"] != "spec.nodeName" || !slices.Contains(c.Args, "--node-name=$(NODE_NAME)") {
				t.Errorf("env %v args %v: want NODE_NAME from spec.nodeName passed as --node-name", env, c.Args)
			}
			var bpffs *corev1.Volume
			for i, v := range spec.Volumes {
				if v.HostPath != nil {
					if v.HostPath.Path != "/sys/fs/bpf" {
						t.Errorf("enforcer mounts host path %s; only /sys/fs/bpf is needed", v.HostPath.Path)
					}
					bpffs = &spec.Volumes[i]
				}
			}
			if bpffs == nil {
				t.Fatal("no /sys/fs/bpf hostPath volume")
			}
			mountOf := func(c corev1.Container) *corev1.VolumeMount {
				for i, m := range c.VolumeMounts {
					if m.Name == bpffs.Name {
						return &c.VolumeMounts[i]
					}
				}
				return nil
			}
			if m := mountOf(c); m == nil || m.MountPath != "/sys/fs/bpf" || m.ReadOnly {
				t.Errorf("enforcer's bpffs mount %+v: want read-write at /sys/fs/bpf", m)
			}
			if (len(spec.InitContainers) == 1) != mount {
				t.Fatalf("%d init containers with bpffs.mount=%t", len(spec.InitContainers), mount)
			}
			if mount {
				ic := spec.InitContainers[0]
				m := mountOf(ic)
				if m == nil || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
					t.Errorf("init container's bpffs mount %+v: want Bidirectional propagation", m)
				}
				if ic.SecurityContext == nil || ic.SecurityContext.Privileged == nil || !*ic.SecurityContext.Privileged {
					t.Error("the bpffs init container must be privileged (Bidirectional propagation)")
				}
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || !hasPort(c, "health", 9963) || !hasPort(c, "metrics", 9962) {
				t.Errorf("readiness %+v ports %+v: want /readyz on health 9963, metrics 9962", p, c.Ports)
			}
		})
	}
}

func hasPort(c corev1.Container, name string, port int32) bool {
	for _, p := range c.Ports {
		if p.Name == name && p.ContainerPort == port {
			return true
		}
	}
	return false
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
