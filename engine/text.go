package engine

import "strings"

// errorText is an error's message as it can be recorded in an event. The
// event log stores JSON in jsonb, which cannot hold a NUL character, and
// re-spells invalid UTF-8; both become U+FFFD here, so that one handler's
// odd error text never fails the transaction that records a whole batch
// of outcomes.
func errorText(err error) string {
	return storableText(err.Error())
}

// storableText replaces what jsonb cannot store verbatim with U+FFFD.
func storableText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return s
}
