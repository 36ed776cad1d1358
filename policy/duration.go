package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// UnmarshalYAML reads a Go duration string ("30s", "1h30m"). Zero ("0",
// "0s") is accepted and means the field's default; negative durations are
// rejected.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like \"30s\", got %s", kindName(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("bad duration %q%s (want e.g. \"30s\", \"5m\", \"8h\")", n.Value, durationHint(n.Value))
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration in its string form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

// durationHint explains the common mistakes Go durations do not accept:
// days and weeks ("1d", "2w"), and a bare number ("30").
func durationHint(s string) string {
	s = strings.TrimSpace(s)
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return ": a unit is required"
	}
	if len(s) < 2 {
		return ""
	}
	hours, name := 0, ""
	switch s[len(s)-1] {
	case 'd':
		hours, name = 24, "days"
	case 'w':
		hours, name = 168, "weeks"
	default:
		return ""
	}
	num := s[:len(s)-1]
	if n, err := strconv.Atoi(num); err == nil && n >= 0 && n < 1<<20 {
		return fmt.Sprintf(": there is no unit for %s, write %q", name, strconv.Itoa(n*hours)+"h")
	}
	if _, err := strconv.ParseFloat(num, 64); err == nil {
		return fmt.Sprintf(": there is no unit for %s, write hours (1%c = %dh)", name, s[len(s)-1], hours)
	}
	return ""
}
