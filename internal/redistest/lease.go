package redistest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseConfig says which databases of a REDIS_URL server may be leased and
// how.
type leaseConfig struct {
	first, last int           // the databases leased, inclusive
	keyPrefix   string        // lease keys, in database 0
	ttl         time.Duration // a lease not kept alive expires after this
	wait        time.Duration // how long to wait for a free database
	poll        time.Duration // pause between two passes over busy databases
}

// leaseConfigDefault leases databases 1 to 15.
var leaseConfigDefault = leaseConfig{
	first:     1,
	last:      15,
	keyPrefix: "redistest:lease:",
	ttl:       time.Minute,
	wait:      2 * time.Minute,
	poll:      50 * time.Millisecond,
}

// errNoDatabase reports that no database could be leased.
var errNoDatabase = errors.New("no database to lease")

// newLeased leases a database on the server at rawURL for t, and at cleanup
// deletes the test's keys and releases the lease.
func newLeased(t testing.TB, rawURL string, cfg leaseConfig) *Server {
	t.Helper()
	base, err := parseURL(rawURL)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	l, err := acquire(t.Context(), base, cfg)
	if err != nil {
		t.Fatalf("redistest: %s: %v", EnvURL, err)
	}
	t.Cleanup(func() {
		if err := l.release(); err != nil {
			t.Errorf("redistest: %s: %v", EnvURL, err)
		}
	})
	return newServer(KindURL, l.opt)
}

// parseURL parses REDIS_URL. Its errors never repeat the URL, which may
// hold a password.
func parseURL(rawURL string) (*redis.Options, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: not a valid redis:// URL: %v", EnvURL, err)
	}
	return opt, nil
}

// lease is a database held by this process.
type lease struct {
	opt   *redis.Options // connects to the leased database
	ctrl  *redis.Client  // database 0, where the lease key lives
	key   string
	token string
	stop  chan struct{} // closed to stop keeping the lease alive
	done  chan struct{} // closed when the keep-alive goroutine returns
}

var (
	// renewScript extends a lease only if it is still ours.
	renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
	// releaseScript deletes a lease only if it is still ours.
	releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)
)

// acquire leases the first free, empty database in cfg's range, waiting up
// to cfg.wait while all of them are leased by others.
func acquire(ctx context.Context, base *redis.Options, cfg leaseConfig) (*lease, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.wait)
	defer cancel()
	ctrlOpt := *base
	ctrlOpt.DB = 0
	ctrl := redis.NewClient(&ctrlOpt)
	token := rand.Text()
	expired := func() error {
		ctrl.Close()
		return fmt.Errorf("%w: every empty database from %d to %d stayed leased for %s", errNoDatabase, cfg.first, cfg.last, cfg.wait)
	}
	for {
		var unusable []string // databases that are not empty or do not exist
		for db := cfg.first; db <= cfg.last; db++ {
			key := cfg.keyPrefix + strconv.Itoa(db)
			ok, err := ctrl.SetNX(ctx, key, token, cfg.ttl).Result()
			if err != nil && ctx.Err() != nil {
				// The wait ran out during a pass, not between two.
				return nil, expired()
			}
			if err != nil {
				ctrl.Close()
				return nil, fmt.Errorf("lease database %d: %w", db, err)
			}
			if !ok {
				continue
			}
			opt := *base
			opt.DB = db
			n, err := dbSize(ctx, &opt)
			if err == nil && n == 0 {
				l := &lease{opt: &opt, ctrl: ctrl, key: key, token: token, stop: make(chan struct{}), done: make(chan struct{})}
				go l.keepAlive(cfg.ttl)
				return l, nil
			}
			if ctx.Err() != nil {
				return nil, expired() // the lease expires on its own (ttl)
			}
			if rerr := releaseScript.Run(ctx, ctrl, []string{key}, token).Err(); rerr != nil {
				ctrl.Close()
				return nil, fmt.Errorf("release database %d: %w", db, rerr)
			}
			if err != nil {
				unusable = append(unusable, fmt.Sprintf("%d (%v)", db, err))
			} else {
				unusable = append(unusable, fmt.Sprintf("%d (%d keys)", db, n))
			}
		}
		if len(unusable) == cfg.last-cfg.first+1 {
			ctrl.Close()
			return nil, fmt.Errorf("%w: databases %d to %d are not empty or unusable: %v; they hold keys left by earlier runs or by something else: point REDIS_URL at a disposable server", errNoDatabase, cfg.first, cfg.last, unusable)
		}
		select {
		case <-ctx.Done():
			return nil, expired()
		case <-time.After(cfg.poll):
		}
	}
}

// dbSize returns the number of keys in the database opt selects.
func dbSize(ctx context.Context, opt *redis.Options) (int64, error) {
	c := redis.NewClient(opt)
	defer c.Close()
	return c.DBSize(ctx).Result()
}

// keepAlive renews the lease every third of ttl until release.
func (l *lease) keepAlive(ttl time.Duration) {
	defer close(l.done)
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
			// A failed renewal is retried at the next tick; if the lease
			// expires meanwhile, another test may take the database and
			// then finds it not empty, so it skips it.
			_ = renewScript.Run(ctx, l.ctrl, []string{l.key}, l.token, ttl.Milliseconds()).Err()
			cancel()
		}
	}
}

// release deletes every key of the leased database, then gives the lease
// up. The database was empty when leased and nobody else uses a leased
// database, so every key there is the test's own.
func (l *lease) release() error {
	close(l.stop)
	<-l.done
	defer l.ctrl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := redis.NewClient(l.opt)
	defer c.Close()
	var errs []error
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	var batch []string
	flush := func() {
		if len(batch) > 0 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				errs = append(errs, fmt.Errorf("delete the test's keys in database %d: %w", l.opt.DB, err))
			}
			batch = batch[:0]
		}
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			flush()
		}
	}
	flush()
	if err := iter.Err(); err != nil {
		errs = append(errs, fmt.Errorf("list the test's keys in database %d: %w", l.opt.DB, err))
	}
	if err := releaseScript.Run(ctx, l.ctrl, []string{l.key}, l.token).Err(); err != nil {
		errs = append(errs, fmt.Errorf("release database %d: %w", l.opt.DB, err))
	}
	return errors.Join(errs...)
}
