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
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cancelworker/cancelworker/tasks"
	"github.com/hibiken/asynq"
	"github.com/valyala/fasthttp"
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
			return hold(ctx, delay)
		}
		return nil
	})
	return serve(redisAddr, concurrency, mux)
}

// runHandwritten serves the Meari queue with the handler a competent user
// would write on asynq from the vendor's page, made as fast as such a
// handler fairly gets: the payload decoded into a struct, the fields signed
// in their sorted order without a map or a sort, the body encoded from a
// struct, one HTTP client whose pool keeps as many idle connections as
// there are slots (MaxIdleConns = MaxIdleConnsPerHost = concurrency, so
// that no call waits for a new connection), and each reply read to its end
// before the body is closed, so that its connection goes back to the pool.
// No logging, no metrics, no attempt records, no dead-letter queue.
func runHandwritten(redisAddr string, concurrency int, baseURL, key, secret string) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = concurrency, concurrency
	h := &handwritten{
		url:    baseURL + "/v3/third/sdk/order/cancel",
		key:    key,
		secret: []byte(secret),
		client: &http.Client{Timeout: 10 * time.Second, Transport: tr},
	}
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeMeariCancel, h)
	return serve(redisAddr, concurrency, mux)
}

// runHandwrittenFast is runHandwritten sending through fasthttp's client
// (as the worker does by default) instead of net/http's: at most as many
// connections as there are slots, each call bounded by the same 10 s, the
// reply read whole into a pooled buffer.
func runHandwrittenFast(redisAddr string, concurrency int, baseURL, key, secret string) error {
	h := &handwritten{
		url:    baseURL + "/v3/third/sdk/order/cancel",
		key:    key,
		secret: []byte(secret),
		fast:   &fasthttp.Client{MaxConnsPerHost: concurrency, MaxConnWaitTimeout: 10 * time.Second},
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
	url, key string
	secret   []byte
	client   *http.Client
	fast     *fasthttp.Client // instead of client
}

// meariBody is the request body, in the vendor's field names.
type meariBody struct {
	SourceApp        int64  `json:"sourceApp"`
	UserAccount      string `json:"userAccount"`
	PartnerKey       string `json:"partnerKey"`
	OrderType        int    `json:"orderType"`
	OrderNum         string `json:"orderNum"`
	SignatureMethod  string `json:"signatureMethod"`
	SignatureVersion string `json:"signatureVersion"`
	SignatureNonce   string `json:"signatureNonce"`
	Timestamp        string `json:"timestamp"`
	Signature        string `json:"signature"`
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
	b := meariBody{
		SourceApp: p.SourceApp, UserAccount: p.UserAccount, PartnerKey: h.key, OrderType: p.OrderType, OrderNum: p.OrderNum,
		SignatureMethod: "HMAC-SHA1", SignatureVersion: "1.0",
		SignatureNonce: strconv.FormatUint(rand.Uint64(), 10), Timestamp: strconv.FormatInt(time.Now().UnixMilli(), 10),
	}
	// The string to sign: every field but the signature, sorted by name.
	sts := make([]byte, 0, 256)
	for _, kv := range [...][2]string{
		{"orderNum", b.OrderNum}, {"orderType", strconv.Itoa(b.OrderType)}, {"partnerKey", b.PartnerKey},
		{"signatureMethod", b.SignatureMethod}, {"signatureNonce", b.SignatureNonce}, {"signatureVersion", b.SignatureVersion},
		{"sourceApp", strconv.FormatInt(b.SourceApp, 10)}, {"timestamp", b.Timestamp}, {"userAccount", b.UserAccount},
	} {
		if len(sts) > 0 {
			sts = append(sts, '&')
		}
		sts = append(append(append(sts, kv[0]...), '='), kv[1]...)
	}
	mac := hmac.New(sha1.New, h.secret)
	mac.Write(sts)
	b.Signature = base64.StdEncoding.EncodeToString(mac.Sum(nil))
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	var r struct {
		ResultCode string `json:"resultCode"`
	}
	if h.fast != nil {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(h.url)
		req.Header.SetMethod(http.MethodPost)
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		if err := h.fast.DoTimeout(req, resp, 10*time.Second); err != nil {
			return err
		}
		if err := json.Unmarshal(resp.Body(), &r); err != nil {
			return err
		}
		return meariOutcome(r.ResultCode)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&r)
	_, _ = io.Copy(io.Discard, resp.Body) // to the end: the connection is reused
	if err != nil {
		return err
	}
	return meariOutcome(r.ResultCode)
}

func meariOutcome(code string) error {
	switch code {
	case "1001":
		return nil
	case "4001", "4002", "1003":
		return fmt.Errorf("meari %s: %w", code, asynq.SkipRetry)
	}
	return fmt.Errorf("meari %s", code)
}

// runClient enqueues the cancellations of a JSON Lines file (the one
// "enqueue file" reads) with a plain asynq.Client from the given number of
// goroutines, its connection pool as large, as a user's own producer would:
// the enqueue side's reference (the bench runs several counts and keeps the
// fastest).
func runClient(redisAddr, path string, goroutines int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	c := asynq.NewClient(asynq.RedisClientOpt{Addr: redisAddr, PoolSize: goroutines})
	defer c.Close()
	lines := make(chan []byte, 64)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range goroutines {
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

// sleepCtx waits d on a Go timer, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
