package main

import (
	"os"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// TestDockerignoreKeepsSecretsOut reads .dockerignore with Docker's own
// matcher: the secret files, local env files and the repository's history
// stay out of the build context (the Dockerfile copies the whole context
// into its build stage), and the sources stay in.
func TestDockerignoreKeepsSecretsOut(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for path, excluded := range map[string]bool{
		"deploy/secrets/meari_partner_secret":   true,
		"deploy/secrets/pandapon_access_secret": true,
		"deploy/secrets/admin_password":         true,
		"deploy/secrets/intake_token":           true,
		".git/config":                           true,
		".env":                                  true,
		"prod.env":                              true,
		"tls/server.key":                        true,
		"go.mod":                                false,
		"go.sum":                                false,
		"cmd/worker/main.go":                    false,
		"internal/admin/templates/dlq.html":     false,
		"deploy/example.env":                    false,
	} {
		got, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != excluded {
			t.Errorf("%s: excluded from the build context %v, want %v", path, got, excluded)
		}
	}
}
