package policy

// CompareVersions compares dotted numeric versions and returns -1, 0 or +1.
// Components compare numerically ("16.10" > "16.9"), missing components are
// zero ("17" == "17.0"), and anything after the leading run of digits and
// dots is ignored ("17.4.1 (b)" compares as "17.4.1"). A leading "v" is
// skipped. It allocates nothing.
func CompareVersions(a, b string) int {
	a, b = numericPrefix(a), numericPrefix(b)
	for a != "" || b != "" {
		var x, y string
		x, a = nextComponent(a)
		y, b = nextComponent(b)
		if c := compareNumbers(x, y); c != 0 {
			return c
		}
	}
	return 0
}

// numericPrefix returns the leading run of digits and dots of s, after an
// optional "v".
func numericPrefix(s string) string {
	if len(s) > 0 && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	i := 0
	for i < len(s) && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')) {
		i++
	}
	return s[:i]
}

// validVersion reports whether s is entirely dotted numbers ("16", "16.4.1").
func validVersion(s string) bool {
	if s == "" {
		return false
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && digits > 0 && i < len(s)-1:
			digits = 0
		default:
			return false
		}
	}
	return digits > 0
}

// hasVersion reports whether s has a numeric version prefix at all.
func hasVersion(s string) bool {
	p := numericPrefix(s)
	for i := 0; i < len(p); i++ {
		if p[i] != '.' {
			return true
		}
	}
	return false
}

func nextComponent(s string) (comp, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// compareNumbers compares two decimal digit strings of any length ("" is 0)
// without converting them, so huge components cannot overflow.
func compareNumbers(x, y string) int {
	for len(x) > 0 && x[0] == '0' {
		x = x[1:]
	}
	for len(y) > 0 && y[0] == '0' {
		y = y[1:]
	}
	switch {
	case len(x) < len(y):
		return -1
	case len(x) > len(y):
		return 1
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
