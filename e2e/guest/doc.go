// Package guest holds the e2e scenarios that run inside the VM the e2e
// package boots: a real IPVS kernel, the director as a real process,
// backends and a client in network namespaces. Outside the VM
// (DIRECTOR_E2E_GUEST unset) every test skips.
package guest
