package checks

import (
	"context"
	"crypto/tls"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// GRPCOptions are the options of grpc checks: the standard health service,
// grpc.health.v1.Health/Check.
type GRPCOptions struct {
	// Service is the service name asked about; "" asks about the server
	// as a whole.
	Service string
	TLS     bool // use TLS, verified as https checks do
	TLSOptions
}

var grpcKind = Kind{
	Name:   "grpc",
	Keys:   append([]Key{{Name: "grpc_service"}}, switchedTLSKeys()...),
	Zero:   GRPCOptions{},
	Decode: decodeGRPC,
	build:  newGRPC,
}

func decodeGRPC(d Decoder) Options {
	var o GRPCOptions
	o.Service, _ = d.String("grpc_service")
	o.TLS, o.TLSOptions = decodeSwitchedTLS(d)
	return o
}

// Validate has nothing to judge: any service name may be asked about.
func (o GRPCOptions) Validate() []OptionError { return nil }

// Canonical renders every option.
func (o GRPCOptions) Canonical() string {
	var c canonical
	c.str("grpc_service", o.Service)
	c.boolean("tls", o.TLS)
	o.TLSOptions.canonical(&c)
	return c.text()
}

// Describe is "grpc 10.0.0.11:50051", "grpcs 10.0.0.11:50051 orders.v1.Orders".
func (o GRPCOptions) Describe(s Spec) string {
	d := "grpc " + s.Target.String()
	if o.TLS {
		d = "grpcs " + s.Target.String()
	}
	if o.Service != "" {
		d += " " + o.Service
	}
	return d
}

// grpcProber asks the standard gRPC health service about a service; the
// check passes when the answer is SERVING. Each probe has a client
// connection of its own, closed when it returns: no connection, and no
// reconnect backoff, carries over from one check to the next.
//
// Reasons: "status NOT_SERVING" (or UNKNOWN) for another answer, "status
// SERVICE_UNKNOWN" for a service the server does not know, "refused",
// "timeout", "tls: ..." for the connection, and "error: grpc <code>" for
// other RPC failures ("error: grpc Unimplemented": no health service).
type grpcProber struct {
	spec    *Spec
	service string
	tls     *tls.Config // nil without TLS
}

func newGRPC(spec *Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(GRPCOptions)
	p := &grpcProber{spec: spec, service: o.Service}
	if o.TLS {
		var err error
		if p.tls, err = tlsConfig(spec, o.TLSOptions, ""); err != nil {
			return nil, err
		}
		p.tls.NextProtos = []string{"h2"}
	}
	return p, nil
}

// Probe runs one Check RPC on a new connection, within the deadline.
func (p *grpcProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

// connErrors keeps the first error of connecting (dial or TLS handshake),
// which the RPC's error only carries as text.
type connErrors struct {
	mu  sync.Mutex
	err error
}

func (e *connErrors) set(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
	}
}

func (e *connErrors) get() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// recordingCreds is TLS transport credentials that note a failed handshake.
type recordingCreds struct {
	credentials.TransportCredentials
	errs *connErrors
}

func (c recordingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		c.errs.set(&tlsError{err})
	}
	return conn, info, err
}

func (p *grpcProber) probe(ctx context.Context) string {
	errs := &connErrors{}
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if p.tls != nil {
		creds = recordingCreds{credentials.NewTLS(p.tls), errs}
	}
	cc, err := grpc.NewClient("passthrough:///"+p.spec.Target.String(),
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			conn, err := dialNetwork(ctx, p.spec, "tcp")
			if err != nil {
				errs.set(err)
			}
			return conn, err
		}),
		grpc.WithUserAgent(UserAgent),
		grpc.WithDisableRetry(),
		grpc.WithDisableServiceConfig())
	if err != nil {
		return "error: " + shortError(err)
	}
	defer cc.Close()

	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
	if err == nil {
		if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
			return "status " + s.String()
		}
		return ""
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unavailable:
		if cerr := errs.get(); cerr != nil {
			return classify(ctx, cerr)
		}
	case codes.NotFound:
		// What the health service answers for a service it does not know.
		return "status " + healthpb.HealthCheckResponse_SERVICE_UNKNOWN.String()
	}
	if reason := classify(ctx, ctx.Err()); reason != "" {
		return reason
	}
	if st.Code() == codes.DeadlineExceeded {
		return "timeout"
	}
	return "error: grpc " + st.Code().String()
}
