// Package e2e proves the director against a real IPVS kernel with real
// traffic. The host side (e2e_test.go) fetches Debian's stock kernel,
// busybox and ipvsadm through apt, builds the director, the guest test
// binary (package e2e/guest) and the ipvs package's tests, packs them into
// an initramfs, boots it once under qemu, runs the ipvs package's tests
// against the real kernel (TestKernel*, with DIRECTOR_REQUIRE_IPVS=1),
// then the guest scenarios, and turns each into a Go subtest.
//
// It skips with the reason when qemu or the downloads are unavailable,
// except under CI=true, where a missing prerequisite is a failure.
//
//	go test ./e2e/ -v                         # the whole suite, one boot
//	DIRECTOR_E2E_RUN=Drift go test ./e2e/ -v  # only guest tests matching a -test.run pattern
//
// Environment: DIRECTOR_E2E_CACHE (cache directory; default
// $XDG_CACHE_HOME/director-e2e), DIRECTOR_E2E_ACCEL (kvm or tcg; default:
// kvm when it boots the kernel, else tcg), DIRECTOR_E2E_RUN (guest
// -test.run pattern), DIRECTOR_E2E=0 (skip).
package e2e
