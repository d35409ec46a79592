# syntax=docker/dockerfile:1
# Multi-stage build: a static director binary in a small non-root image.
#
# The director programs the host's IPVS table, so run it in the host's
# network namespace with the capabilities it needs and nothing more:
#
#   docker run -d --name director --network host \
#     --cap-drop ALL --cap-add NET_ADMIN --cap-add NET_RAW \
#     -v /etc/director:/etc/director:ro -v director-state:/var/lib/director \
#     director:latest
#
# NET_ADMIN: IPVS changes over netlink. NET_RAW: only for ICMP checks with
# privileged = true. The host must have the ip_vs module loaded
# (modprobe ip_vs): a container cannot load kernel modules.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/director ./cmd/director
# File capabilities let the non-root user use NET_ADMIN/NET_RAW when the
# container is granted them; BuildKit's COPY keeps the xattr.
RUN apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_admin,cap_net_raw+ep /out/director \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/director /usr/local/bin/director
# state_file's default directory (overrides and the managed services),
# writable by the non-root user; mount a volume here to keep it.
COPY --from=build --chown=65532:65532 /out/state /var/lib/director
VOLUME /var/lib/director
# Because the binary carries file capabilities, the container must be
# granted NET_ADMIN and NET_RAW (see above) or the kernel refuses to exec it.
USER 65532:65532
EXPOSE 9410
ENTRYPOINT ["/usr/local/bin/director"]
CMD ["run", "-config", "/etc/director/director.toml"]
