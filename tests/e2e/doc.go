// Package e2e proves Palisade end to end: the real API server (envtest,
// built from source by hack/envtest-assets.sh), the real `palisade
// enforcer` binary as a process per node, and the real kernel, where nodes
// and pods are network namespaces joined by veth pairs and real TCP and
// UDP connections decide pass or fail.
//
// TestServices adds the real kube-proxy (nftables mode, built by
// hack/envtest-assets.sh with WITH_KUBE_PROXY=1) in each node's namespace,
// so pod → ClusterIP traffic is rewritten as in a cluster.
//
// TestBridgedNode adds, for as long as it runs, node3: bridged the way
// flannel and the bridge plugin are (pods' veths are ports of cni0), with
// its own enforcer, next to the routed node1 and node2.
//
// The package holds only tests; this file exists so that it builds.
// Run it as root with KUBEBUILDER_ASSETS set (make test does both); it
// skips with the reason otherwise, and fails instead when
// PALISADE_REQUIRE_PRIVILEGED=1.
package e2e
