//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestHint: the errors an operator can fix say what to do, and keep
// their cause for errors.Is.
func TestHint(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind string
		want string
	}{
		{fmt.Errorf("unshare: %w", unix.EPERM), "", "need CAP_NET_ADMIN and CAP_SYS_ADMIN"},
		{unix.EACCES, "macvlan", "need CAP_NET_ADMIN and CAP_SYS_ADMIN"},
		{unix.EOPNOTSUPP, "macvlan", "the kernel lacks macvlan: modprobe macvlan, or build it with CONFIG_MACVLAN"},
		{unix.EOPNOTSUPP, "ipip", "the kernel lacks ipip: modprobe ipip, or build it with CONFIG_NET_IPIP"},
		{unix.EEXIST, "ipip", ""},
	} {
		got := hint(tc.err, tc.kind)
		if !errors.Is(got, tc.err) {
			t.Errorf("hint(%v, %q) = %v, lost its cause", tc.err, tc.kind, got)
		}
		if tc.want == "" && got.Error() != tc.err.Error() {
			t.Errorf("hint(%v, %q) = %v, want it unchanged", tc.err, tc.kind, got)
		}
		if tc.want != "" && !strings.Contains(got.Error(), tc.want) {
			t.Errorf("hint(%v, %q) = %v, want %q", tc.err, tc.kind, got, tc.want)
		}
	}
	if hint(nil, "ipip") != nil {
		t.Error("hint(nil) is not nil")
	}
}
