package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binDir holds the riskgate binary built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "riskgate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var buildOnce = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "riskgate")
	start := time.Now()
	// Built in the main module, with its own go.mod, as a release is: the
	// e2e module's dependencies (Dex's) must not change riskgate's.
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/riskgate")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build riskgate: %w\n%s", err, out)
	}
	return bin + "\x00" + time.Since(start).Round(time.Millisecond).String(), nil
})

// riskgateBinary builds cmd/riskgate (once per test binary) and returns its
// path.
func riskgateBinary(t *testing.T) string {
	t.Helper()
	v, err := buildOnce()
	require.NoError(t, err)
	bin, took, _ := strings.Cut(v, "\x00")
	t.Logf("riskgate binary %s (built in %s)", bin, took)
	return bin
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago, for a subprocess that needs its addresses on the command line.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// lockedBuffer collects a subprocess's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a running riskgate subprocess.
type process struct {
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit error, set before done is closed
}

// startRiskgate runs the riskgate binary with args until the test ends,
// then stops it with SIGTERM (as a service manager would) and checks that
// it exits cleanly. Its output is logged when the test fails (or always,
// with RISKGATE_E2E_VERBOSE=1).
func startRiskgate(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{
		cmd:    exec.Command(riskgateBinary(t), args...),
		stdout: &lockedBuffer{},
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
				if p.err != nil {
					t.Errorf("riskgate %s: exit after SIGTERM: %v", args[0], p.err)
				}
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
				t.Errorf("riskgate %s: still running 15s after SIGTERM; killed", args[0])
			}
		}
		if t.Failed() || os.Getenv("RISKGATE_E2E_VERBOSE") != "" {
			t.Logf("riskgate %s stdout:\n%s", args[0], p.stdout.String())
			t.Logf("riskgate %s stderr:\n%s", args[0], lastLines(p.stderr.String(), 60))
		}
	})
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// waitReady polls the admin /readyz until it answers 200 (configuration
// loaded, first sync of every vendor done), failing early if the process
// exits.
func (p *process) waitReady(t *testing.T, adminAddr string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: 2 * time.Second}
	poll(t, timeout, 100*time.Millisecond, "riskgate /readyz", func() error {
		select {
		case <-p.done:
			return stopPolling{fmt.Errorf("riskgate exited: %v\n%s", p.err, lastLines(p.stderr.String(), 30))}
		default:
		}
		resp, err := client.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	})
	t.Logf("riskgate ready after %s", time.Since(start).Round(time.Millisecond))
}

// stopPolling makes poll give up at once.
type stopPolling struct{ err error }

func (s stopPolling) Error() string { return s.err.Error() }

// poll calls check every interval until it returns nil, and fails the test
// with check's last error when timeout has passed first.
func poll(t *testing.T, timeout, interval time.Duration, what string, check func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		var stop stopPolling
		if errors.As(err, &stop) {
			t.Fatalf("%s: %v", what, stop.err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not done after %s: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}
