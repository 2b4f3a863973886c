package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
)

// The peers the worker is measured against run in processes of their own,
// as the worker does: this binary started with a peer's name.

// runNoop serves the Meari queue with a handler that calls nothing and
// only waits for the upstream delay, if any: what asynq itself costs, the
// ceiling of any asynq-based worker.
func runNoop(redisAddr string, concurrency int, delay time.Duration) error {
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeMeariCancel, func(ctx context.Context, _ *asynq.Task) error {
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	return serve(redisAddr, concurrency, mux)
}

// runHandwritten serves the Meari queue with the handler a user would
// write on asynq from the vendor's page: decode the payload, sign, POST,
// read the result code. No logging, no metrics, no attempt records; an
// HTTP client whose idle pool is sized to the concurrency (with Go's
// default of 2 idle connections per host it would mostly measure TCP
// set-up).
func runHandwritten(redisAddr string, concurrency int, baseURL, key, secret string) error {
	h := &handwritten{
		url:    baseURL + "/v3/third/sdk/order/cancel",
		key:    key,
		secret: secret,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}},
	}
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeMeariCancel, h)
	return serve(redisAddr, concurrency, mux)
}

func serve(redisAddr string, concurrency int, mux *asynq.ServeMux) error {
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: redisAddr}, asynq.Config{
		Concurrency: concurrency,
		Queues:      map[string]int{tasks.QueueMeari: 1},
		LogLevel:    asynq.WarnLevel,
	})
	return srv.Run(mux) // until SIGTERM
}

type handwritten struct {
	url, key, secret string
	client           *http.Client
}

func (h *handwritten) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p struct {
		SourceApp   int64  `json:"source_app"`
		UserAccount string `json:"user_account"`
		OrderType   int    `json:"order_type"`
		OrderNum    string `json:"order_num"`
	}
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("payload: %v: %w", err, asynq.SkipRetry)
	}
	fields := map[string]string{
		"sourceApp":        strconv.FormatInt(p.SourceApp, 10),
		"userAccount":      p.UserAccount,
		"partnerKey":       h.key,
		"orderType":        strconv.Itoa(p.OrderType),
		"orderNum":         p.OrderNum,
		"signatureMethod":  "HMAC-SHA1",
		"signatureVersion": "1.0",
		"signatureNonce":   strconv.FormatUint(rand.Uint64(), 10),
		"timestamp":        strconv.FormatInt(time.Now().UnixMilli(), 10),
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte('&')
		}
		sb.WriteString(k + "=" + fields[k])
	}
	mac := hmac.New(sha1.New, []byte(h.secret))
	mac.Write([]byte(sb.String()))
	body := map[string]any{}
	for k, v := range fields {
		body[k] = v
	}
	body["sourceApp"], body["orderType"] = p.SourceApp, p.OrderType
	body["signature"] = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		ResultCode string `json:"resultCode"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return err
	}
	switch r.ResultCode {
	case "1001":
		return nil
	case "4001", "4002", "1003":
		return fmt.Errorf("meari %s: %w", r.ResultCode, asynq.SkipRetry)
	}
	return fmt.Errorf("meari %s", r.ResultCode)
}

// runClient enqueues the cancellations of a JSON Lines file (the one
// "enqueue file" reads) with a plain asynq.Client from 16 goroutines, as a
// user's own producer would: the enqueue side's reference.
func runClient(redisAddr, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: redisAddr})
	defer c.Close()
	lines := make(chan []byte, 64)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range lines {
				var item struct {
					UserAccount string `json:"userAccount"`
					OrderType   int    `json:"orderType"`
					OrderNum    string `json:"orderNum"`
					SourceApp   int64  `json:"sourceApp"`
				}
				err := json.Unmarshal(l, &item)
				var t *asynq.Task
				if err == nil {
					t, err = tasks.NewMeariCancelTask(tasks.MeariCancel{SourceApp: item.SourceApp, UserAccount: item.UserAccount, OrderType: item.OrderType, OrderNum: item.OrderNum})
				}
				if err == nil {
					_, err = c.Enqueue(t)
				}
				if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
				}
			}
		}()
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines <- append([]byte(nil), sc.Bytes()...)
	}
	close(lines)
	wg.Wait()
	if err := sc.Err(); err != nil {
		return err
	}
	return firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
