package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

// exitError is an exit status whose message has already been printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `riskgate: a conditional-access reverse proxy driven by device risk

usage:
  riskgate serve --config FILE       run the proxy
  riskgate validate --config FILE    check a config file
  riskgate explain --config FILE --url URL --user U [--groups a,b] [--device ID]
                   [--risk LEVEL] [--platform P] [--os-version V] [--json]
                                     explain the decision for a request (what-if)
  riskgate demo                      run a complete local sandbox
  riskgate version                   print version and build info
`

// run is the whole program; main only adds the signal context and the exit
// code, so that tests can run every command in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError(2)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stdout, stderr)
	case "validate":
		return validate(args[1:], getenv, stdout, stderr)
	case "explain":
		return explain(args[1:], getenv, stdout, stderr)
	case "demo":
		return demo(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		printVersion(stdout)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "riskgate: unknown command %q\n\n%s", args[0], usage)
		return exitError(2)
	}
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "riskgate %s\n", version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(w, "go: %s\n", bi.GoVersion)
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
				fmt.Fprintf(w, "%s: %s\n", s.Key, s.Value)
			}
		}
	}
}
