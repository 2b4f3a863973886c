package text_test

import (
	"testing"

	"github.com/cancelworker/cancelworker/internal/text"
)

func TestPrintable(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{in: "plain 订单 text", want: "plain 订单 text"},
		{in: "a\nb\tc\x1bd\x7fe", want: "a b c d e"},
		{in: "c1\u009bx", want: "c1 x"},
		{in: "evil\u202egpj.exe", want: "evil gpj.exe"},
		{in: "iso\u2066late\u2069", want: "iso late "},
		{in: "line\u2028sep", want: "line sep"},
		{in: "bad\xffutf8", want: "bad\uFFFDutf8"},
		{in: "emoji 👩\u200d💻 keeps its joiner", want: "emoji 👩\u200d💻 keeps its joiner"},
	}
	for _, tt := range tests {
		if got := text.Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc…"},
		{"xñyzw", 2, "x…"}, // ñ is 2 bytes: not split
		{"日本語", 4, "日…"},
		{"abc", 0, "…"},
	}
	for _, tt := range tests {
		if got := text.Truncate(tt.s, tt.n); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
		}
	}
}
