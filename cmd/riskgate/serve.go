package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/riskgate/riskgate/policy"
	"github.com/riskgate/riskgate/proxy"
	"github.com/riskgate/riskgate/riskcache"
)

// serve runs the proxy until ctx ends (SIGINT, SIGTERM), then drains.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (required)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *path == "" {
		fmt.Fprintln(stderr, "riskgate serve: --config is required")
		return exitError(2)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "riskgate serve: --log-level: %v\n", err)
		return exitError(2)
	}
	cfg, set, err := loadConfig(*path, getenv)
	if err != nil {
		printConfigErrors(stderr, *path, err)
		return exitError(1)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	return serveConfig(ctx, serveOptions{
		path: *path, getenv: getenv, cfg: cfg, set: set, logger: logger, now: time.Now,
	})
}

type serveOptions struct {
	path   string
	getenv func(string) string
	cfg    *policy.Config
	set    *policy.Set
	logger *slog.Logger
	now    func() time.Time
	// listening, if set, is called with the bound proxy and admin addresses.
	listening func(proxyAddr, adminAddr net.Addr)
	// watch turns the file watcher on (SIGHUP always reloads).
	noWatch bool
}

// serveConfig wires every part top to bottom and runs them until ctx ends.
func serveConfig(ctx context.Context, o serveOptions) error {
	logger, cfg := o.logger, o.cfg

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	logWarnings(logger, cfg)
	g := newGateway(logger, reg, cfg, o.now)
	if cfg.Risk.StateFile != "" {
		if err := riskcache.LoadState(cfg.Risk.StateFile, g.cache); err != nil {
			logger.Warn("risk state file not restored; starting empty", "file", cfg.Risk.StateFile, "err", err)
		} else {
			logger.Info("risk state restored", "file", cfg.Risk.StateFile)
		}
	}
	if err := g.apply(ctx, cfg, o.set); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	g.proxyM.ReloadSucceeded()

	proxyLn, tlsConf, err := listenProxy(cfg.Server)
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", cfg.Server.AdminListen)
	if err != nil {
		proxyLn.Close()
		return fmt.Errorf("admin listener: %w", err)
	}
	if o.listening != nil {
		o.listening(proxyLn.Addr(), adminLn.Addr())
	}

	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	proxySrv := &http.Server{
		Handler:           g.proxy,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
	adminSrv := &http.Server{
		Handler: proxy.NewAdmin(proxy.AdminOptions{
			Gatherer: reg,
			Ready:    g.ready,
			Handlers: adminHandlers(g),
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errorLog,
	}
	logger.Info("riskgate serving", "version", version, "listen", proxyLn.Addr().String(),
		"admin_listen", adminLn.Addr().String(), "tls", tlsConf != nil, "config", o.path)

	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.syncers.Run(ctx) })
	if cfg.Risk.StateFile != "" {
		w := riskcache.NewStateWriter(riskcache.StateWriterOptions{
			Path: cfg.Risk.StateFile, Cache: g.cache, Interval: cfg.Risk.StateInterval.Duration, Logger: logger,
		})
		eg.Go(func() error { return w.Run(ctx) })
	}
	rl := &reloader{path: o.path, getenv: o.getenv, g: g, logger: logger, watch: !o.noWatch}
	eg.Go(func() error { return rl.Run(ctx) })
	eg.Go(func() error {
		return runServer(ctx, proxySrv, proxyLn, tlsConf != nil, cfg.Server.ShutdownTimeout.Duration)
	})
	eg.Go(func() error { return runServer(ctx, adminSrv, adminLn, false, cfg.Server.ShutdownTimeout.Duration) })
	err = eg.Wait()
	logger.Info("riskgate stopped", "err", err)
	return err
}

// adminHandlers are the admin listener's endpoints beyond /metrics,
// /healthz and /readyz: the what-if explain and Go's profiler (the admin
// listener is for operators only; keep it off public networks).
func adminHandlers(g *gateway) map[string]http.Handler {
	return map[string]http.Handler{
		"GET /explain":             explainHandler(g),
		"GET /status":              statusHandler(g),
		"GET /debug/pprof/":        http.HandlerFunc(pprof.Index),
		"GET /debug/pprof/cmdline": http.HandlerFunc(pprof.Cmdline),
		"GET /debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		"GET /debug/pprof/symbol":  http.HandlerFunc(pprof.Symbol),
		"GET /debug/pprof/trace":   http.HandlerFunc(pprof.Trace),
	}
}

// runServer serves until ctx ends, then shuts down gracefully: stop
// accepting, drain in-flight requests for at most timeout.
func runServer(ctx context.Context, srv *http.Server, ln net.Listener, tls bool, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		if tls {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		err = fmt.Errorf("shutdown: requests still in flight after %s", timeout)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// listenProxy opens the proxy listener and, when server.tls is set, its TLS
// configuration. With a client CA, client certificates are requested and
// verified: a certificate from another CA fails the handshake; no
// certificate is allowed (the client_cert device source then yields nothing).
func listenProxy(s policy.Server) (net.Listener, *tls.Config, error) {
	var conf *tls.Config
	if s.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLS.CertFile, s.TLS.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("server.tls: %w", err)
		}
		conf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if s.TLS.ClientCAFile != "" {
			pem, err := os.ReadFile(s.TLS.ClientCAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("server.tls.client_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("server.tls.client_ca_file: no PEM certificate in %s", s.TLS.ClientCAFile)
			}
			conf.ClientCAs = pool
			conf.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("proxy listener: %w", err)
	}
	return ln, conf, nil
}
