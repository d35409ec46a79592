package checks

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/lvsdirector/director/internal/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// grpcServer serves gRPC on a loopback port until the test's cleanup,
// with register adding its services.
func grpcServer(t *testing.T, opts []grpc.ServerOption, register func(*grpc.Server)) netip.AddrPort {
	t.Helper()
	l := testutil.Listen(t)
	srv := grpc.NewServer(opts...)
	register(srv)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return testutil.AddrPort(t, l.Addr())
}

// healthServer is grpc-go's own health service with these statuses.
func healthServer(statuses map[string]healthpb.HealthCheckResponse_ServingStatus) func(*grpc.Server) {
	return func(srv *grpc.Server) {
		h := health.NewServer()
		for name, s := range statuses {
			h.SetServingStatus(name, s)
		}
		healthpb.RegisterHealthServer(srv, h)
	}
}

// stuckHealth is a health service whose Check never answers.
type stuckHealth struct {
	healthpb.UnimplementedHealthServer
}

func (stuckHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestGRPC(t *testing.T) {
	noLeaks(t)
	target := grpcServer(t, nil, healthServer(map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":             healthpb.HealthCheckResponse_SERVING,
		"orders.v1":    healthpb.HealthCheckResponse_SERVING,
		"billing.v1":   healthpb.HealthCheckResponse_NOT_SERVING,
		"inventory.v1": healthpb.HealthCheckResponse_UNKNOWN,
	}))
	for _, tt := range []struct {
		service, reason string
	}{
		{"", ""},
		{"orders.v1", ""},
		{"billing.v1", "status NOT_SERVING"},
		{"inventory.v1", "status UNKNOWN"},
		{"nosuch.v1", "status SERVICE_UNKNOWN"},
	} {
		t.Run(tt.service, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "grpc", Target: target, Options: GRPCOptions{Service: tt.service}}), 5*time.Second), tt.reason)
		})
	}
}

func TestGRPCFailures(t *testing.T) {
	noLeaks(t)
	noHealth := grpcServer(t, nil, func(*grpc.Server) {})
	stuck := grpcServer(t, nil, func(srv *grpc.Server) { healthpb.RegisterHealthServer(srv, stuckHealth{}) })
	// Not gRPC at all: an HTTP/1 server's answer to the HTTP/2 preface.
	http1 := testutil.ServeConns(t, testutil.Listen(t), func(c net.Conn) {
		c.Read(make([]byte, 1024))
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
	})
	probeTargets(t, "grpc", nil, false, append(deadServers(t), []targetCase{
		{"health check that never answers", stuck, 300 * time.Millisecond, "timeout"},
		{"no health service", noHealth, 5 * time.Second, "error: grpc Unimplemented"},
		{"not gRPC", http1, 5 * time.Second, "error: grpc Unavailable"},
	}...))
}

func TestGRPCTLS(t *testing.T) {
	noLeaks(t)
	pki := testutil.TestCA(t)
	caFile := pki.File(t)
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pki.ValidLeaf(t)}})
	statuses := map[string]healthpb.HealthCheckResponse_ServingStatus{"": healthpb.HealthCheckResponse_SERVING}
	target := grpcServer(t, []grpc.ServerOption{grpc.Creds(creds)}, healthServer(statuses))
	plain := grpcServer(t, nil, healthServer(statuses))
	tlsOpts := func(o TLSOptions) GRPCOptions { return GRPCOptions{TLS: true, TLSOptions: o} }
	for _, tt := range []struct {
		name   string
		target netip.AddrPort
		opts   GRPCOptions
		reason string
	}{
		{"verified", target, tlsOpts(TLSOptions{CAFile: caFile}), ""},
		{"server name", target, tlsOpts(TLSOptions{CAFile: caFile, ServerName: "test.example"}), ""},
		{"unverified", target, tlsOpts(TLSOptions{TLSSkipVerify: true}), ""},
		{"unknown CA", target, tlsOpts(TLSOptions{}), "tls: certificate signed by unknown authority"},
		{"wrong name", target, tlsOpts(TLSOptions{CAFile: caFile, ServerName: "other.example"}), "tls: certificate is valid for test.example, not other.example"},
		{"plaintext server", plain, tlsOpts(TLSOptions{TLSSkipVerify: true}), "tls: server did not answer with TLS"},
		{"plaintext probe of a TLS server", target, GRPCOptions{}, "error: grpc Unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantResult(t, probeWithin(t, mustNew(t, Spec{Type: "grpc", Target: tt.target, Options: tt.opts}), 5*time.Second), tt.reason)
		})
	}
}
