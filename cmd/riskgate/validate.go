package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/riskgate/riskgate/policy"
)

// validate checks a config file: "ok" and nil, or one FILE:LINE:COL line per
// error on stdout and exit status 1.
func validate(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (required)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *path == "" {
		fmt.Fprintln(stderr, "riskgate validate: --config is required")
		return exitError(2)
	}
	cfg, _, err := loadConfig(*path, getenv)
	if err != nil {
		printConfigErrors(stdout, *path, err)
		return exitError(1)
	}
	// Warnings go to stderr: stdout stays exactly "ok" for scripts.
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "%s:%d:%d: warning: %s\n", w.File, w.Line, w.Column, w.Msg)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// loadConfig loads, validates and compiles a config file: the one way serve,
// validate, explain and reloads read configuration.
func loadConfig(path string, getenv func(string) string) (*policy.Config, *policy.Set, error) {
	cfg, err := policy.Load(path, getenv)
	if err != nil {
		return nil, nil, err
	}
	set, err := policy.Compile(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}

// printConfigErrors prints one line per error, each FILE:LINE:COL: message
// when the error has a position.
func printConfigErrors(w io.Writer, path string, err error) {
	var errs policy.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	var e policy.Error
	if errors.As(err, &e) {
		fmt.Fprintln(w, e.Error())
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}

// logWarnings logs the config's warnings, one line each.
func logWarnings(logger *slog.Logger, cfg *policy.Config) {
	for _, w := range cfg.Warnings {
		logger.Warn("config warning", "at", fmt.Sprintf("%s:%d:%d", w.File, w.Line, w.Column), "warning", w.Msg)
	}
}
