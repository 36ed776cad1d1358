package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

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
	if _, _, err := loadConfig(*path, getenv); err != nil {
		printConfigErrors(stdout, *path, err)
		return exitError(1)
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
