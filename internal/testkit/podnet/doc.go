// Package podnet builds pods as network namespaces, the way a routed CNI
// plugin (Calico, kindnet, ptp) would on a real node, so that the demo and
// the end-to-end suite can run the real enforcer against real traffic
// without a kubelet or a container runtime.
//
// A Network owns everything it creates: node namespaces, the wire between
// two nodes, pod namespaces with their veth pairs and routes, "external"
// hosts outside the cluster, and the sockets opened inside them. Close
// undoes all of it, whatever state setup reached, so a failed or
// interrupted run leaves no namespace or link behind.
//
// The addressing follows one plan (see NodeConfig): node N owns
// 10.244.N.0/24 and fd00:N::/64; each pod's /32 and /128 are routed to its
// own host-side veth, which carries the gateway 10.244.N.1 and fe80::1.
//
// Creating namespaces needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and
// iproute2's ip; Available says whether this process has them.
package podnet
