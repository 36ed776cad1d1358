package riskcache

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/riskgate/riskgate/policy"
)

// stateVersion is the state file format. The file is a stream of JSON
// objects, one per line: a header, then per vendor a vendor line followed by
// its devices (oldest first, so that a restore keeps the LRU order) and its
// alternative ids, then an end line with the number of lines before it, so
// that a truncated file is detected.
const stateVersion = 1

// stateLine is any line of the state file; the keys are short because a
// file holds one line per device.
type stateLine struct {
	Version  int    `json:"riskgate_state,omitempty"`
	Vendor   string `json:"vendor,omitempty"`
	LastSync int64  `json:"last_sync,omitempty"` // unix nanos
	ID       string `json:"d,omitempty"`
	Alias    string `json:"a,omitempty"`
	Level    uint8  `json:"l,omitempty"`
	User     string `json:"u,omitempty"`
	Platform string `json:"p,omitempty"`
	OS       string `json:"o,omitempty"`
	Updated  int64  `json:"t,omitempty"` // unix seconds
	Since    int64  `json:"s,omitempty"` // unix seconds
	End      *int   `json:"end,omitempty"`
}

// stateBatch is how many devices SaveState copies per read lock, so that
// writes to the cache are not held up for the whole save.
const stateBatch = 1024

// SaveState writes every vendor's last successful sync time and devices to
// path atomically: a temporary file in the same directory is written,
// synced and renamed over path, and the directory is synced.
func SaveState(path string, c *Cache) (err error) {
	dir := filepath.Dir(path)
	// The directory may not exist yet on a fresh machine
	// (/var/lib/riskgate): create it, private to riskgate.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("riskcache: save state: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("riskcache: save state: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			err = fmt.Errorf("riskcache: save state: %w", err)
		}
	}()
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := writeState(bw, c); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeState(w io.Writer, c *Cache) error {
	enc := json.NewEncoder(w)
	lines := 0
	put := func(l *stateLine) error {
		lines++
		return enc.Encode(l)
	}
	if err := put(&stateLine{Version: stateVersion}); err != nil {
		return err
	}
	for _, s := range *c.vendors.Load() {
		if err := put(&stateLine{Vendor: s.name, LastSync: s.lastSync.Load()}); err != nil {
			return err
		}
		s.mu.RLock()
		ids := s.devices.keys()
		alts := s.aliases.Keys()
		s.mu.RUnlock()
		for len(ids) > 0 {
			batch := ids[:min(stateBatch, len(ids))]
			ids = ids[len(batch):]
			batchLines := make([]stateLine, len(batch))
			ok := make([]bool, len(batch))
			s.mu.RLock()
			for i, id := range batch {
				ok[i] = s.deviceLine(id, &batchLines[i])
			}
			s.mu.RUnlock()
			for i := range batchLines {
				if !ok[i] {
					continue // removed meanwhile
				}
				if err := put(&batchLines[i]); err != nil {
					return err
				}
			}
		}
		for _, a := range alts {
			var l stateLine
			s.mu.RLock()
			ok := s.aliasLine(a, &l)
			s.mu.RUnlock()
			if ok {
				if err := put(&l); err != nil {
					return err
				}
			}
		}
	}
	return enc.Encode(&stateLine{End: &lines})
}

// LoadState restores the vendors and devices saved in path into c, for the
// vendors c has. A restored vendor counts as synced at its saved time: it is
// Ready, and its data goes stale MaxAge after that time. The whole file is
// checked before anything is restored, so a corrupt or truncated file
// returns an error (for the caller to log) and changes nothing.
func LoadState(path string, c *Cache) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("riskcache: load state: %w", err)
	}
	defer f.Close()
	if err := readState(f, nil); err != nil {
		return fmt.Errorf("riskcache: load state %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("riskcache: load state: %w", err)
	}
	now := c.now()
	var (
		cur      *vendorStore
		lastSync int64
	)
	finish := func() {
		if cur != nil && lastSync != 0 {
			// Keep a newer real sync (LoadState normally runs first).
			if old := cur.lastSync.Load(); old < lastSync {
				cur.lastSync.CompareAndSwap(old, lastSync)
			}
		}
	}
	err = readState(f, func(l *stateLine) {
		switch {
		case l.Vendor != "":
			finish()
			cur, lastSync = c.store(l.Vendor), l.LastSync
		case cur == nil:
		case l.Alias != "":
			cur.restoreAlias(l.Alias, l.ID)
		case l.ID != "":
			r := Report{DeviceID: l.ID, Level: policy.Level(l.Level), User: l.User,
				Platform: l.Platform, OSVersion: l.OS, UpdatedAt: unixTime(l.Updated)}
			cur.restoreDevice(&r, now, l.Since)
		}
	})
	finish()
	if err != nil {
		return fmt.Errorf("riskcache: load state %s: %w", path, err)
	}
	return nil
}

// readState decodes the state stream, calling fn (when not nil) for each
// line between the header and the end line.
func readState(r io.Reader, fn func(*stateLine)) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	lines := 0
	var l stateLine
	for {
		l = stateLine{}
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("truncated: no end line")
			}
			return fmt.Errorf("line %d: %w", lines+1, err)
		}
		switch {
		case lines == 0:
			if l.Version != stateVersion {
				return fmt.Errorf("not a riskgate state file of version %d", stateVersion)
			}
		case l.End != nil:
			if *l.End != lines {
				return fmt.Errorf("end line counts %d lines, file has %d", *l.End, lines)
			}
			if _, err := dec.Token(); !errors.Is(err, io.EOF) {
				return errors.New("data after the end line")
			}
			return nil
		case l.Level > uint8(policy.LevelHigh):
			return fmt.Errorf("line %d: invalid level %d", lines+1, l.Level)
		case l.Alias != "" && l.ID == "":
			return fmt.Errorf("line %d: alternative id without device id", lines+1)
		case fn != nil:
			fn(&l)
		}
		lines++
	}
}

// DefaultStateInterval is how often a StateWriter saves when its Interval
// is zero.
const DefaultStateInterval = time.Minute

// StateWriterOptions configure a StateWriter.
type StateWriterOptions struct {
	Path  string
	Cache *Cache
	// Interval between saves; zero means DefaultStateInterval.
	Interval time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// After waits; nil means time.After.
	After func(time.Duration) <-chan time.Time
}

// StateWriter saves the cache to its state file periodically and once more
// on shutdown.
type StateWriter struct {
	path     string
	cache    *Cache
	interval time.Duration
	log      *slog.Logger
	after    func(time.Duration) <-chan time.Time
}

// NewStateWriter returns a StateWriter; Run starts it.
func NewStateWriter(opts StateWriterOptions) *StateWriter {
	w := &StateWriter{path: opts.Path, cache: opts.Cache, interval: opts.Interval, log: opts.Logger, after: opts.After}
	if w.interval <= 0 {
		w.interval = DefaultStateInterval
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.after == nil {
		w.after = time.After
	}
	return w
}

// Run saves every interval until ctx is cancelled, then saves once more and
// returns nil. Failed saves are logged; the previous file stays intact.
func (w *StateWriter) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			w.save()
			return nil
		case <-w.after(w.interval):
			w.save()
		}
	}
}

func (w *StateWriter) save() {
	start := time.Now()
	if err := SaveState(w.path, w.cache); err != nil {
		w.log.Error("saving risk state failed", "err", err)
		return
	}
	w.log.Debug("risk state saved", "path", w.path, "took", time.Since(start))
}
