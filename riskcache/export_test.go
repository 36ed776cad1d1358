package riskcache

// SetMaxBody lowers the response body bound of a source made by NewSource,
// so that tests need not send 64 MiB.
func SetMaxBody(src Source, n int64) {
	switch s := src.(type) {
	case *Generic:
		s.maxBody = n
	case *Graph:
		s.http.maxBody = n
	case *Lookout:
		s.http.maxBody = n
	case *Zimperium:
		s.http.maxBody = n
	case *CheckPoint:
		s.http.maxBody = n
	default:
		panic("SetMaxBody: unknown source")
	}
}
