// Package text holds the small string rules shared by every package that
// checks, stores or prints text from outside: which characters may not be
// printed as they are, and how to make a string safe to print.
package text

import (
	"net/url"
	"strings"
	"unicode"
)

// IsLayoutControl reports the invisible characters that reorder or break
// the text around them when it is printed in a table, a log line or a web
// page: the bidirectional controls (U+202E makes "gpj.exe" read "exe.jpg")
// and the Unicode line and paragraph separators.
func IsLayoutControl(r rune) bool {
	switch {
	case r == 0x061C, r == 0x200E, r == 0x200F: // ALM, LRM, RLM
		return true
	case r >= 0x202A && r <= 0x202E: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Unprintable reports a character that must not reach a terminal or a page
// as it is: a C0 or C1 control, DEL, or a layout control.
func Unprintable(r rune) bool { return unicode.IsControl(r) || IsLayoutControl(r) }

// Printable returns s with every unprintable character replaced by a space,
// and invalid UTF-8 by U+FFFD.
func Printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsFunc(s, Unprintable) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if Unprintable(r) {
			return ' '
		}
		return r
	}, s)
}

// Truncate shortens s to at most n bytes without splitting a UTF-8
// sequence, and marks the cut with "…" (3 bytes more: pass n less 3 where
// the mark must fit in the bound too). A string of at most n bytes is
// returned as it is.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// URLSecret returns what in u's user information may be a secret: the
// password, or a user name given without one, which is how a password is
// often written (redis://PASSWORD@host, as redis-cli reads it). "" for
// none.
func URLSecret(u *url.URL) string {
	if u == nil || u.User == nil {
		return ""
	}
	if pw, ok := u.User.Password(); ok {
		return pw
	}
	return u.User.Username()
}

// RedactedURL returns u as it may be shown: a password replaced by
// "xxxxx", as url.URL.Redacted does, and a user name given without a
// password as well (see URLSecret).
func RedactedURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	if _, ok := u.User.Password(); u.User != nil && !ok && u.User.Username() != "" {
		c := *u
		c.User = url.User("xxxxx")
		return c.String()
	}
	return u.Redacted()
}
