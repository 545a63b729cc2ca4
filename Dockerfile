# syntax=docker/dockerfile:1
# ltigrade's container image: the grading service, the sync CronJob, and the
# source of the binary the hub pod and the user image copy
# (docs/kubernetes.md). Build it from the repository root, the build context:
#
#   docker build -t registry.example.edu/ltigrade/ltigrade:dev \
#       --build-arg VERSION="$(git describe --tags --always --dirty)" .
#
# (or `make image`; podman and buildah read this file as it is).

# Build: cgo for mattn/go-sqlite3, linked statically, because the binary also
# runs in images that are not this one (the JupyterHub hub image, any users'
# image) whose C library we do not choose. osusergo and netgo keep glibc's
# NSS out (user and DNS lookups in Go: a static binary cannot dlopen NSS
# modules), sqlite_omit_load_extension drops SQLite's dlopen of extensions,
# which ltigrade never uses. GO_VERSION follows go.mod (a test checks it).
ARG GO_VERSION=1.26.8
FROM golang:${GO_VERSION}-trixie AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -tags osusergo,netgo,sqlite_omit_load_extension -ldflags "-s -w -linkmode external -extldflags -static -X github.com/ltigrade/ltigrade/internal/cli.Version=${VERSION}" -o /out/ltigrade ./cmd/ltigrade
RUN /out/ltigrade --version

# Run: a small Debian with CA certificates (LMS requests are https) and a
# shell with cp and install, which the hub's init container, the spool
# sidecar and the CronJob use. A distroless image would lack them.
FROM debian:trixie-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ltigrade /usr/local/bin/ltigrade
# Any non-root user: the pods set their own (the hub's is 1000).
USER 65532:65532
ENTRYPOINT ["ltigrade"]
CMD ["--help"]
