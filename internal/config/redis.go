package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/cancelworker/cancelworker/internal/text"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis is where the Redis connection comes from: the URL and, kept apart
// from it, the password.
type Redis struct {
	// URL is redis://[user[:password]@]host:port/db or rediss://.
	URL string
	// URLFromFlag is true when URL came from the command line, where a
	// password is refused: anyone on the machine can read a process's
	// arguments.
	URLFromFlag bool
	// Password, when not empty, is the password from REDIS_PASSWORD or
	// REDIS_PASSWORD_FILE; URL must not hold one as well.
	Password string
}

// ParseRedis returns the client options for r and the URL as it may be
// shown: with any password replaced by "xxxxx". Its errors never hold the
// password.
func ParseRedis(r Redis) (*redis.Options, string, error) {
	u, err := url.Parse(r.URL)
	// A password holding '/', '?' or '#' ends the URL's authority early:
	// the URL then fails to parse, with an error that quotes part of the
	// password, or parses with the rest of the password in its path. Show
	// nothing of such a URL.
	if scheme, rest, ok := strings.Cut(r.URL, "://"); ok && strings.Contains(rest, "@") && (err != nil || u.User == nil) {
		if len(scheme) > 8 || strings.ContainsFunc(scheme, func(c rune) bool { return c < 'a' || c > 'z' }) {
			scheme = "redis"
		}
		return nil, scheme + "://(hidden)", errors.New("is not a valid URL, and it holds an '@': percent-encode any /, ?, # or @ in the user name or password, or give the password in REDIS_PASSWORD_FILE")
	}
	if err != nil {
		// url.Error repeats the whole URL: keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, "", fmt.Errorf("is not a valid URL: %v", err)
	}
	_, hasPassword := u.User.Password()
	// A user name without a password is a password as redis-cli reads
	// redis://PASSWORD@host, unless a password is given apart.
	userOnly := !hasPassword && text.URLSecret(u) != "" && r.Password == ""
	shown := u.Redacted()
	if userOnly {
		shown = text.RedactedURL(u)
	}
	switch {
	case (hasPassword || userOnly) && r.URLFromFlag:
		what := "a password"
		if userOnly {
			what = "a user name without a password (redis://PASSWORD@host is a password to redis-cli)"
		}
		return nil, shown, errors.New("must not hold " + what + " on the command line, where any user of this machine can read it (ps, /proc/<pid>/cmdline): " +
			"put the password in a file named by REDIS_PASSWORD_FILE (--redis-password-file), or give the URL in REDIS_URL")
	case hasPassword && r.Password != "":
		return nil, shown, errors.New("holds a password and REDIS_PASSWORD or REDIS_PASSWORD_FILE is set too: give the password in one place")
	}
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "redis: ")
		switch secret := text.URLSecret(u); {
		case secret != "" && hasPassword:
			msg = strings.ReplaceAll(msg, secret, "xxxxx")
		case userOnly:
			msg = strings.ReplaceAll(msg, "//"+secret+"@", "//xxxxx@")
		}
		return nil, shown, errors.New(msg)
	}
	if r.Password != "" {
		opt.Password = r.Password
	}
	opt.MaintNotificationsConfig = maintOff()
	return opt, shown, nil
}

// maintOff turns off go-redis's maintenance notifications. Only Redis
// Enterprise and Redis Cloud send them, to move a client's connections
// before a node goes away; the worker reconnects after such a move as it
// does after a failover or a Redis restart. In go-redis's default mode
// (auto) every client sets up their handoff manager, its queue sized to
// the pool, before it learns whether the server sends them: the worker's
// peak RSS at C=200 in the bench was 0.5 MB lower with them off.
func maintOff() *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}
