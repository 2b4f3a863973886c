package metrics

import "testing"

func TestCodeLabel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, provider, code, want string
	}{
		{name: "success", provider: "meari", code: "", want: ""},
		{name: "meari documented code", provider: "meari", code: "4001", want: "4001"},
		{name: "meari auth code", provider: "meari", code: "1023", want: "1023"},
		{name: "meari unknown code", provider: "meari", code: "9999", want: Other},
		{name: "meari code of pandapon's shape", provider: "meari", code: "200", want: Other},
		{name: "pandapon status-like code", provider: "pandapon", code: "200", want: "200"},
		{name: "pandapon 503", provider: "pandapon", code: "503", want: "503"},
		{name: "pandapon out of range", provider: "pandapon", code: "600", want: Other},
		{name: "pandapon long code", provider: "pandapon", code: "20000", want: Other},
		{name: "pandapon text code", provider: "pandapon", code: "isv.invalid", want: Other},
		{name: "pandapon documented meari code", provider: "pandapon", code: "4001", want: Other},
		{name: "http status", provider: "meari", code: "http_429", want: "http_429"},
		{name: "http status out of range", provider: "meari", code: "http_999", want: Other},
		{name: "http garbage", provider: "pandapon", code: "http_5x3", want: Other},
		{name: "transport code", provider: "pandapon", code: "reset", want: "reset"},
		{name: "handler internal", provider: "meari", code: "internal", want: "internal"},
		{name: "order id as code", provider: "meari", code: "2542285634920880794", want: Other},
		{name: "unknown provider", provider: "other", code: "4001", want: Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := codeLabel(tt.provider, tt.code); got != tt.want {
				t.Errorf("codeLabel(%q, %q) = %q, want %q", tt.provider, tt.code, got, tt.want)
			}
		})
	}
}

func TestOtherLabels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		got, want string
	}{
		{name: "known provider", got: providerLabel("pandapon"), want: "pandapon"},
		{name: "unknown provider", got: providerLabel("acme"), want: Other},
		{name: "known class", got: classLabel("auth"), want: "auth"},
		{name: "unknown class", got: classLabel("class(9)"), want: Other},
		{name: "known reason", got: reasonLabel("max age exceeded"), want: "max age exceeded"},
		{name: "unknown reason", got: reasonLabel("cosmic ray"), want: Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
