package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloader reloads the config file on SIGHUP and, with watch, whenever the
// file changes. A file that does not load is logged with its FILE:LINE:COL
// errors and counted; the config in force keeps serving.
type reloader struct {
	path   string
	getenv func(string) string
	g      *gateway
	logger *slog.Logger
	watch  bool
	// debounce groups the burst of events an editor's save makes. Default
	// 200ms.
	debounce time.Duration
}

// Run reloads until ctx ends.
func (rl *reloader) Run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var events <-chan fsnotify.Event
	var errs <-chan error
	if rl.watch {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			rl.logger.Warn("config watcher not started; reload with SIGHUP", "err", err)
		} else {
			defer w.Close()
			// Watch the directory, not the file: editors and Kubernetes
			// ConfigMaps replace the file by rename, which ends a watch on
			// the file itself.
			if err := w.Add(filepath.Dir(rl.path)); err != nil {
				rl.logger.Warn("config watcher not started; reload with SIGHUP", "err", err)
			} else {
				events, errs = w.Events, w.Errors
			}
		}
	}
	debounce := rl.debounce
	if debounce <= 0 {
		debounce = 200 * time.Millisecond
	}
	base := filepath.Base(rl.path)
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			rl.logger.Info("SIGHUP: reloading config", "file", rl.path)
			rl.reload(ctx)
		case ev := <-events:
			name := filepath.Base(ev.Name)
			// Kubernetes swaps a "..data" symlink; editors write temp files
			// first: any event on the file or on the symlink dir triggers.
			if name == base || strings.HasPrefix(name, "..data") {
				timer = time.After(debounce)
			}
		case err := <-errs:
			rl.logger.Warn("config watcher error", "err", err)
		case <-timer:
			timer = nil
			rl.logger.Info("config file changed: reloading", "file", rl.path)
			rl.reload(ctx)
		}
	}
}

// reload loads, validates and applies the file, or keeps the old config.
func (rl *reloader) reload(ctx context.Context) bool {
	cfg, set, err := loadConfig(rl.path, rl.getenv)
	if err == nil {
		err = rl.g.apply(ctx, cfg, set)
	}
	if err != nil {
		var b strings.Builder
		printConfigErrors(&b, rl.path, err)
		rl.logger.Error("config reload failed; the previous config keeps serving",
			"file", rl.path, "errors", strings.Split(strings.TrimSpace(b.String()), "\n"))
		rl.g.proxyM.ReloadFailed()
		return false
	}
	logWarnings(rl.logger, cfg)
	rl.logger.Info("config reloaded", "file", rl.path, "routes", len(cfg.Routes), "policies", len(cfg.Policies), "vendors", len(cfg.Risk.Vendors))
	rl.g.proxyM.ReloadSucceeded()
	return true
}
