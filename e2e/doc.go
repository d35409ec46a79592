// Package e2e proves the director against a real IPVS kernel with real
// traffic. The host side (e2e_test.go) fetches Debian's stock kernel,
// busybox and ipvsadm through apt, builds the director and the guest test
// binaries, packs them into an initramfs, boots it once under qemu and
// turns each guest test into a Go subtest. The guest runs the scenarios of
// package e2e/guest, then the kernel tests of package ipvs (the ipvs.Table
// conformance suite of ipvs/ipvstest among them, with
// DIRECTOR_REQUIRE_IPVS=1 so none can skip).
//
// It skips with the reason when qemu or the downloads are unavailable,
// except under CI=true, where a missing prerequisite is a failure.
//
//	go test ./e2e/ -v                         # the whole suite, one boot
//	DIRECTOR_E2E_RUN=Drift go test ./e2e/ -v  # only guest tests matching a -test.run pattern
//	DIRECTOR_E2E_RUN=Kernel go test ./e2e/ -v # only the kernel tests of package ipvs
//
// Environment: DIRECTOR_E2E_CACHE (cache directory; default
// $XDG_CACHE_HOME/director-e2e), DIRECTOR_E2E_ACCEL (kvm or tcg; default:
// kvm when it boots the kernel, else tcg), DIRECTOR_E2E_RUN (guest
// -test.run pattern), DIRECTOR_E2E=0 (skip).
package e2e
