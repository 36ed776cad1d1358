package riskcache

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/riskgate/riskgate/policy"
)

func TestStateRoundTrip(t *testing.T) {
	clk := newClock()
	src := New(Options{MaxAge: time.Hour, Now: clk.Now, Vendors: []string{"a", "graph", "never"}})
	src.Apply("a", []Report{rep("d1", policy.LevelHigh), rep("d2", policy.LevelSecured), {DeviceID: "d3"}})
	g := rep("aad-1", policy.LevelMedium)
	g.AltIDs = []string{"eas-1"}
	src.Apply("graph", []Report{g})
	src.MarkSynced("a", clk.Now())
	src.MarkSynced("graph", clk.Now().Add(-30*time.Minute))

	path := filepath.Join(t.TempDir(), "var", "lib", "riskgate", "risk.json") // the directory does not exist yet
	require.NoError(t, SaveState(path, src))

	clk.Add(10 * time.Minute)
	dst := New(Options{MaxAge: time.Hour, Now: clk.Now, Vendors: []string{"a", "graph", "never", "new"}})
	require.NoError(t, LoadState(path, dst))

	for _, id := range []string{"d1", "d2", "d3", "aad-1", "eas-1", "nope"} {
		assert.Equal(t, src.Lookup(id), dst.Lookup(id), id)
	}
	assert.Equal(t, src.Counts("a"), dst.Counts("a"))
	assert.Equal(t, src.Counts("graph"), dst.Counts("graph"))
	last, ok := dst.LastSync("graph")
	require.True(t, ok)
	assert.True(t, last.Equal(clk.Now().Add(-40*time.Minute)))
	_, ok = dst.LastSync("never")
	assert.False(t, ok)

	// Restored vendors count as synced at their saved time for Ready...
	dst.SetVendors([]string{"a", "graph"})
	assert.True(t, dst.Ready())
	// ...and go stale MaxAge after it, not after the restore.
	clk.Add(25 * time.Minute)
	assert.True(t, dst.Lookup("aad-1").Stale)
	assert.False(t, dst.Lookup("d1").Stale)

	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestLoadStateRejectsBadFiles(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a"}})
	c.Apply("a", []Report{rep("d1", policy.LevelHigh), rep("d2", policy.LevelLow)})
	c.MarkSynced("a", clk.Now())
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, SaveState(good, c))
	b, err := os.ReadFile(good)
	require.NoError(t, err)
	text := string(b)

	tests := map[string]string{
		"empty":         "",
		"garbage":       "not json at all",
		"truncated":     text[:len(text)-20],
		"no end line":   text[:strings.LastIndex(text[:len(text)-1], "\n")+1],
		"wrong count":   strings.Replace(text, `{"end":`, `{"end":1`, 1),
		"bad level":     strings.Replace(text, `"l":4`, `"l":9`, 1),
		"wrong version": strings.Replace(text, `"riskgate_state":1`, `"riskgate_state":7`, 1),
		"trailing data": text + "{}\n",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
			dst := New(Options{Now: clk.Now, Vendors: []string{"a"}})
			require.Error(t, LoadState(path, dst))
			assert.False(t, dst.Lookup("d1").Known, "a bad file restores nothing")
			assert.False(t, dst.Ready())
		})
	}
	t.Run("missing", func(t *testing.T) {
		require.Error(t, LoadState(filepath.Join(dir, "missing.json"), New(Options{})))
	})
	t.Run("unwritable directory", func(t *testing.T) {
		// A missing directory is created; one that cannot be (a file is in
		// the way) is an error.
		notDir := filepath.Join(dir, "a-file")
		require.NoError(t, os.WriteFile(notDir, nil, 0o600))
		require.Error(t, SaveState(filepath.Join(notDir, "risk.json"), c))
	})
}

func TestStateWriterSavesPeriodicallyAndOnShutdown(t *testing.T) {
	clk := newClock()
	c := New(Options{Now: clk.Now, Vendors: []string{"a"}})
	c.MarkSynced("a", clk.Now())
	path := filepath.Join(t.TempDir(), "risk.json")
	wait := newWaiter()
	w := NewStateWriter(StateWriterOptions{Path: path, Cache: c, Interval: time.Minute, After: wait.after,
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	assert.Equal(t, time.Minute, wait.next(t))
	c.Apply("a", []Report{rep("d1", policy.LevelHigh)})
	wait.release <- time.Time{}
	assert.Equal(t, time.Minute, wait.next(t)) // the first save is done
	restored := New(Options{Now: clk.Now, Vendors: []string{"a"}})
	require.NoError(t, LoadState(path, restored))
	assert.True(t, restored.Lookup("d1").Known)

	c.Apply("a", []Report{rep("d2", policy.LevelLow)})
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	restored = New(Options{Now: clk.Now, Vendors: []string{"a"}})
	require.NoError(t, LoadState(path, restored))
	assert.True(t, restored.Lookup("d2").Known, "saved once more on shutdown")
}
