package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lvsdirector/director/checks"
)

// genhashCmd prints the digest of a page's body as an http or https check
// with expect_digest computes it (and as keepalived's genhash prints it),
// with the config lines to paste. Exit 0 with the digest, 1 when the page
// cannot be fetched, 2 on usage errors.
func genhashCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("genhash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	useSHA256 := fs.Bool("sha256", false, "print a SHA-256 digest (expect_digest = \"sha256:...\") instead of MD5")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	host := fs.String("host", "", "the Host header (and TLS server name), as the check's host option; default: the URL's host")
	skipVerify := fs.Bool("tls-skip-verify", false, "https: do not verify the server's certificate (the check's tls_skip_verify)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "director genhash: want one URL, such as http://10.0.0.11:8080/index.html")
		return 2
	}
	target, err := genhashTarget(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "director genhash: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	addr, err := resolveTarget(ctx, target)
	if err != nil {
		fmt.Fprintf(stderr, "director genhash: %v\n", err)
		return 1
	}
	opts := checks.HTTPOptions{Path: target.RequestURI(), Host: *host,
		MaxBodyBytes: 1 << 30, TLSOptions: checks.TLSOptions{TLSSkipVerify: *skipVerify}}
	if opts.Host == "" && net.ParseIP(target.Hostname()) == nil {
		opts.Host = target.Host // a name: the server is told which site
	}
	alg, label := "md5", "MD5SUM"
	if *useSHA256 {
		alg, label = "sha256", "SHA256SUM"
	}
	got, reason, err := checks.FetchDigest(ctx, checks.Spec{Type: target.Scheme, Target: addr, Timeout: *timeout, Options: opts}, alg)
	if err != nil {
		fmt.Fprintf(stderr, "director genhash: %v\n", err)
		return 2
	}
	if reason != "" {
		fmt.Fprintf(stderr, "director genhash: %s://%s%s: %s\n", target.Scheme, addr, opts.Path, reason)
		return 1
	}
	fmt.Fprintf(stdout, "%s = %s\n", label, strings.TrimPrefix(got.Digest, "sha256:"))
	fmt.Fprintf(stdout, "\n# In the %s check, or in one of its [[virtual_server.check.url]] entries:\n", target.Scheme)
	fmt.Fprintf(stdout, "path = %s\n", strconv.Quote(opts.Path))
	if got.Status < 200 || got.Status > 299 {
		fmt.Fprintf(stdout, "expect_status = [\"%d\"]\n", got.Status)
	}
	fmt.Fprintf(stdout, "expect_digest = %s\n", strconv.Quote(got.Digest))
	if got.Size > checks.DefaultMaxBodyBytes {
		fmt.Fprintf(stdout, "# the body is %d bytes; the check reads the whole body only with:\nmax_body_bytes = %d\n", got.Size, got.Size)
	}
	return 0
}

// genhashTarget parses and judges genhash's URL.
func genhashTarget(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, err
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q: want an http:// or https:// URL", raw)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%q: no host", raw)
	case u.User != nil || u.Fragment != "":
		return nil, fmt.Errorf("%q: a check's URL has no user or #fragment", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("%q: invalid port", p)
		}
	}
	return u, nil
}

// resolveTarget is the address and port the check of u (from
// genhashTarget) would connect to: the first address of a name.
func resolveTarget(ctx context.Context, u *url.URL) (netip.AddrPort, error) {
	port := uint64(80)
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		port, _ = strconv.ParseUint(p, 10, 16) // genhashTarget judged it
	}
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		addrs, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
		if lerr != nil {
			return netip.AddrPort{}, lerr
		}
		if len(addrs) == 0 {
			return netip.AddrPort{}, fmt.Errorf("%s: no address", u.Hostname())
		}
		addr = addrs[0]
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
