// Package buildinfo says which build a binary is: its module version and
// the VCS revision it was built from, as the Go toolchain records them.
// Every binary prints it for --version, the worker logs it at start and
// exports it as cancelworker_build_info.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is one build's identity.
type Info struct {
	// Version is the main module's version: a tag for `go install
	// module@version`, "(devel)" for a build from a checkout (Go 1.24 and
	// later put a pseudo-version there when the checkout is clean).
	Version string
	// Revision is the VCS commit ("" when the build did not record one,
	// as with `go run` or -buildvcs=false), Time its commit time, and
	// Modified whether the work tree had uncommitted changes.
	Revision, Time string
	Modified       bool
	// GoVersion is the toolchain that built it.
	GoVersion string
}

// Read returns this binary's build info.
func Read() Info {
	i := Info{Version: "(unknown)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return i
	}
	if bi.Main.Version != "" {
		i.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// Short is the revision's first 12 characters, with "+dirty" for a
// modified tree, or "unknown".
func (i Info) Short() string {
	r := i.Revision
	if r == "" {
		return "unknown"
	}
	if len(r) > 12 {
		r = r[:12]
	}
	if i.Modified {
		r += "+dirty"
	}
	return r
}

// String is the --version line of the binary named name.
func (i Info) String(name string) string {
	s := fmt.Sprintf("%s %s (revision %s", name, i.Version, i.Short())
	if i.Time != "" {
		s += ", committed " + i.Time
	}
	return s + ", " + i.GoVersion + ")"
}
