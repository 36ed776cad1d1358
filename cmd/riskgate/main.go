// Command riskgate is a conditional-access reverse proxy that lets a Mobile
// Threat Defense vendor's verdict on a device decide whether its user gets
// through. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGHUP reloads the config once serve is running; until then (and in
	// the other commands) it must not kill the process.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(int(ee))
	default:
		fmt.Fprintln(os.Stderr, "riskgate:", err)
		os.Exit(1)
	}
}
