# Multi-stage build: a static binary on a small non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces asynqmon with the copy in third_party: its go.mod is part
# of the module graph the download resolves.
COPY third_party/asynqmon/go.mod third_party/asynqmon/
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/worker ./cmd/enqueue ./cmd/intake ./cmd/sandbox

FROM alpine:3.22
# wget (busybox) serves the healthchecks; ca-certificates the HTTPS upstreams.
RUN apk add --no-cache ca-certificates && adduser -D -H -u 10001 app
COPY --from=build /out/worker /out/enqueue /out/intake /out/sandbox /usr/local/bin/
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/worker"]
