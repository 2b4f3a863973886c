package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ParseStep reads one step as a script file writes it:
//
//	ok                          success
//	meari:<code>                Meari resultCode, e.g. meari:1005
//	pandapon:<code>[:<data>]    PandaPon body code, data true or false
//	http:<status>               an HTTP status, e.g. http:503
//	retry-after:<status>:<d>    an HTTP status with Retry-After d, e.g. retry-after:429:2s
//	slow:<d>:<step>             wait d, then the step, e.g. slow:3s:ok
//	reset                       close the connection without an answer
//	bad-body:<text>             HTTP 200 with text as the body
func ParseStep(s string) (Step, error) {
	kind, rest, _ := strings.Cut(strings.TrimSpace(s), ":")
	bad := func(format string, args ...any) (Step, error) {
		return Step{}, fmt.Errorf("step %q: %s", s, fmt.Sprintf(format, args...))
	}
	status := func(v string) (int, bool) {
		n, err := strconv.Atoi(v)
		return n, err == nil && n >= 200 && n <= 599
	}
	switch kind {
	case "ok":
		if rest != "" {
			return bad("ok takes nothing after it")
		}
		return OK(), nil
	case "meari":
		if rest == "" {
			return bad("give the resultCode, e.g. meari:1005")
		}
		return MeariCode(rest), nil
	case "pandapon":
		codeText, dataText, hasData := strings.Cut(rest, ":")
		code, err := strconv.Atoi(codeText)
		if err != nil {
			return bad("give the body code, e.g. pandapon:429 or pandapon:200:false")
		}
		if !hasData {
			return PandaPonCode(code, nil), nil
		}
		data, err := strconv.ParseBool(dataText)
		if err != nil {
			return bad("data must be true or false, got %q", dataText)
		}
		return PandaPonCode(code, &data), nil
	case "http":
		n, ok := status(rest)
		if !ok {
			return bad("give a status from 200 to 599, e.g. http:503")
		}
		return HTTPStatus(n), nil
	case "retry-after":
		statusText, dText, _ := strings.Cut(rest, ":")
		n, ok := status(statusText)
		d, err := time.ParseDuration(dText)
		if !ok || err != nil || d < 0 {
			return bad("give a status and a delay, e.g. retry-after:429:2s")
		}
		return RetryAfter(n, d), nil
	case "slow":
		dText, then, _ := strings.Cut(rest, ":")
		d, err := time.ParseDuration(dText)
		if err != nil || d < 0 || then == "" {
			return bad("give a delay and a step, e.g. slow:3s:ok")
		}
		next, err := ParseStep(then)
		if err != nil {
			return Step{}, err
		}
		return Slow(d, next), nil
	case "reset":
		if rest != "" {
			return bad("reset takes nothing after it")
		}
		return Reset(), nil
	case "bad-body":
		return BadBody(rest), nil
	}
	return bad("unknown step: want ok, meari:, pandapon:, http:, retry-after:, slow:, reset or bad-body:")
}

// ScriptLine is one order's scripted answers, from a script file.
type ScriptLine struct {
	Provider, Order string
	Steps           []Step
}

// ParseScript reads a script file: one order per line,
// "<provider> <order> <step>[,<step>...]" (steps as ParseStep reads them),
// answered in turn, the last one for every later call; blank lines and
// lines starting with # are skipped. Every bad line is reported, by
// number.
func ParseScript(r io.Reader) ([]ScriptLine, error) {
	var (
		out  []ScriptLine
		errs []string
	)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			errs = append(errs, fmt.Sprintf("line %d: want <provider> <order> <step>[,<step>...], got %d fields", n, len(f)))
			continue
		}
		sl := ScriptLine{Provider: f[0], Order: f[1]}
		ok := true
		for _, s := range strings.Split(f[2], ",") {
			st, err := ParseStep(s)
			if err == nil {
				err = st.validFor(sl.Provider)
			}
			if err != nil {
				errs = append(errs, fmt.Sprintf("line %d: %v", n, err))
				ok = false
				break
			}
			sl.Steps = append(sl.Steps, st)
		}
		if ok {
			out = append(out, sl)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}
