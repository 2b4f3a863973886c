package intake

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

func TestMain(m *testing.M) {
	// The tests against a Redis that is down would otherwise fill the
	// output with go-redis's own dial logs.
	redis.SetLogger(&logging.VoidLogger{})
	os.Exit(m.Run())
}
