package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// runCmd runs a riskgate command in-process with an empty environment.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, func(string) string { return "" }, &out, &errb)
	return out.String(), errb.String(), err
}

func TestValidate(t *testing.T) {
	t.Parallel()

	t.Run("example config is ok", func(t *testing.T) {
		out, _, err := runCmd(t, "validate", "--config", "../../config.example.yaml")
		require.NoError(t, err)
		assert.Equal(t, "ok\n", out)
	})

	t.Run("broken config: one FILE:LINE:COL line per error", func(t *testing.T) {
		out, _, err := runCmd(t, "validate", "--config", "testdata/broken.yaml")
		require.Equal(t, exitError(1), err)
		if *update {
			require.NoError(t, os.WriteFile("testdata/broken.golden", []byte(out), 0o644))
		}
		want, rerr := os.ReadFile("testdata/broken.golden")
		require.NoError(t, rerr)
		assert.Equal(t, string(want), out)
		line := regexp.MustCompile(`^testdata/broken\.yaml:\d+:\d+: \S.*$`)
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		assert.Len(t, lines, 8, "every mistake in the file is reported, not only the first")
		for _, l := range lines {
			assert.Regexp(t, line, l)
		}
	})

	t.Run("syntax error has a position", func(t *testing.T) {
		out, _, err := runCmd(t, "validate", "--config", "testdata/syntax.yaml")
		require.Equal(t, exitError(1), err)
		assert.Regexp(t, `^testdata/syntax\.yaml:\d+:\d+: yaml: .+\n$`, out)
	})

	t.Run("missing file", func(t *testing.T) {
		out, _, err := runCmd(t, "validate", "--config", "testdata/does-not-exist.yaml")
		require.Equal(t, exitError(1), err)
		assert.Contains(t, out, "testdata/does-not-exist.yaml")
	})

	t.Run("missing --config is a usage error", func(t *testing.T) {
		out, errOut, err := runCmd(t, "validate")
		require.Equal(t, exitError(2), err)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "--config is required")
	})

	t.Run("unknown flag is a usage error", func(t *testing.T) {
		_, _, err := runCmd(t, "validate", "--confg", "x.yaml")
		require.Equal(t, exitError(2), err)
	})
}

func TestCommands(t *testing.T) {
	t.Parallel()

	t.Run("version", func(t *testing.T) {
		out, _, err := runCmd(t, "version")
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(out, "riskgate "), "got %q", out)
	})
	t.Run("no command", func(t *testing.T) {
		_, errOut, err := runCmd(t)
		require.Equal(t, exitError(2), err)
		assert.Contains(t, errOut, "usage:")
	})
	t.Run("unknown command", func(t *testing.T) {
		_, errOut, err := runCmd(t, "frobnicate")
		require.Equal(t, exitError(2), err)
		assert.Contains(t, errOut, `unknown command "frobnicate"`)
	})
	t.Run("help", func(t *testing.T) {
		out, _, err := runCmd(t, "help")
		require.NoError(t, err)
		for _, c := range []string{"serve", "validate", "explain", "demo", "version"} {
			assert.Contains(t, out, "riskgate "+c)
		}
	})
	t.Run("serve without --config", func(t *testing.T) {
		_, errOut, err := runCmd(t, "serve")
		require.Equal(t, exitError(2), err)
		assert.Contains(t, errOut, "--config is required")
	})
	t.Run("serve with a broken config prints its errors", func(t *testing.T) {
		_, errOut, err := runCmd(t, "serve", "--config", "testdata/broken.yaml")
		require.Equal(t, exitError(1), err)
		want, rerr := os.ReadFile("testdata/broken.golden")
		require.NoError(t, rerr)
		assert.Equal(t, string(want), errOut)
	})
}
