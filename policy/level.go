package policy

import "fmt"

// Level is a device's threat level as reported by an MTD vendor. The zero
// value is LevelUnknown: no vendor has reported the device. Known levels are
// ordered: secured < low < medium < high.
type Level uint8

// Levels, in order of increasing risk after LevelUnknown.
const (
	LevelUnknown Level = iota
	LevelSecured
	LevelLow
	LevelMedium
	LevelHigh
)

var levelNames = [...]string{"unknown", "secured", "low", "medium", "high"}

// String returns the level's name as used in configuration, headers and
// metric labels.
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return "unknown"
}

// ParseLevel parses a level name. "unknown" is accepted.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), nil
		}
	}
	return LevelUnknown, fmt.Errorf("unknown risk level %q (want secured, low, medium or high)", s)
}

// Levels lists the known levels in order, for metrics that report every level.
func Levels() []Level { return []Level{LevelUnknown, LevelSecured, LevelLow, LevelMedium, LevelHigh} }
