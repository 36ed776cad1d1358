package policy

import (
	"fmt"
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
		return fmt.Errorf("bad duration %q (want e.g. \"30s\", \"5m\", \"8h\")", n.Value)
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
