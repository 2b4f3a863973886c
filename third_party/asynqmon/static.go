package asynqmon

import (
	"embed"
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// uiAssetsHandler is a http.Handler.
// The path to the static file directory and
// the path to the index file within that static directory are used to
// serve the SPA.
type uiAssetsHandler struct {
	rootPath       string
	contents       embed.FS
	staticDirPath  string
	indexFileName  string
	prometheusAddr string
	readOnly       bool
}

// ServeHTTP inspects the URL path to locate a file within the static dir
// on the SPA handler.
// If path '/' is requested, it will serve the index file, otherwise it will
// serve the file specified by the URL path.
func (h *uiAssetsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Get the absolute path to prevent directory traversal.
	path, err := filepath.Abs(r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	// Get the path relative to the root path.
	if !strings.HasPrefix(path, h.rootPath) {
		http.Error(w, "unexpected path prefix", http.StatusBadRequest)
		return
	}
	path = strings.TrimPrefix(path, h.rootPath)

	if code, err := h.serveFile(w, path); err != nil {
		http.Error(w, err.Error(), code)
		return
	}
}

func (h *uiAssetsHandler) indexFilePath() string {
	return filepath.Join(h.staticDirPath, h.indexFileName)
}

// renderIndexFile writes the index file with its placeholders filled in.
//
// cancelworker: upstream executes the file as an html/template (with the
// delimiters /[[ and ]], which webpack leaves alone). A binary that can
// execute a template keeps every exported method of every type it links,
// since the linker cannot tell which ones a template calls: with go-redis
// that doubled the size of the worker's binary. The three placeholders
// stand in double-quoted HTML attributes (URLs) and in JavaScript strings
// in <script> elements; urlEscape makes a value safe in both.
func (h *uiAssetsHandler) renderIndexFile(w http.ResponseWriter) error {
	b, err := h.contents.ReadFile(h.indexFilePath())
	if err != nil {
		return err
	}
	r := strings.NewReplacer(
		"/[[.RootPath]]", urlEscape(h.rootPath),
		"/[[.PrometheusAddr]]", urlEscape(h.prometheusAddr),
		"/[[.ReadOnly]]", strconv.FormatBool(h.readOnly),
	)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err = r.WriteString(w, string(b))
	return err
}

// urlEscape returns the URL s with every byte percent-encoded but those
// that mean the same in a URL, a double-quoted HTML attribute and a
// JavaScript string: letters, digits and -._~:/?#@!$()*+,;=% (not quotes,
// a backslash, < and >, & or white space). A query's & is encoded too,
// which changes its meaning: cancelworker sets no Prometheus address, and
// its root path has none.
func urlEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~:/?#@!$()*+,;=%", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// serveFile writes file requested at path and returns http status code and error if any.
// If requested path is root, it serves the index file.
// Otherwise, it looks for file requiested in the static content filesystem
// and serves if a file is found.
// If a requested file is not found in the filesystem, it serves the index file to
// make sure when user refreshes the page in SPA things still work.
func (h *uiAssetsHandler) serveFile(w http.ResponseWriter, path string) (code int, err error) {
	if path == "/" || path == "" {
		if err := h.renderIndexFile(w); err != nil {
			return http.StatusInternalServerError, err
		}
		return http.StatusOK, nil
	}
	path = filepath.Join(h.staticDirPath, path)
	bytes, err := h.contents.ReadFile(path)
	if err != nil {
		// If path is error (e.g. file not exist, path is a directory), serve index file.
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			if err := h.renderIndexFile(w); err != nil {
				return http.StatusInternalServerError, err
			}
			return http.StatusOK, nil
		}
		return http.StatusInternalServerError, err
	}
	// Setting the MIME type for .js files manually to application/javascript as
	// http.DetectContentType is using https://mimesniff.spec.whatwg.org/ which
	// will not recognize application/javascript for security reasons.
	if strings.HasSuffix(path, ".js") {
		w.Header().Add("Content-Type", "application/javascript; charset=utf-8")
	} else {
		w.Header().Add("Content-Type", http.DetectContentType(bytes))
	}

	if _, err := w.Write(bytes); err != nil {
		return http.StatusInternalServerError, err
	}
	return http.StatusOK, nil
}
