# syntax=docker/dockerfile:1
# Multi-stage build: a static director binary in a small distroless image.
#
# The director programs the host's IPVS table, so it runs in the host's
# network namespace with only the capabilities it needs (docker-compose.yml
# has the same as a compose file):
#
#   docker run -d --name director --network host --restart unless-stopped \
#     --cap-drop ALL --cap-add NET_ADMIN --read-only \
#     --security-opt no-new-privileges \
#     -v /etc/director:/etc/director:ro -v director-state:/var/lib/director \
#     director:latest
#
# NET_ADMIN: IPVS over netlink. Add --cap-add NET_RAW only for ICMP checks
# with privileged = true (raw sockets). The host must have the ip_vs module
# loaded (modprobe ip_vs): a container cannot load kernel modules.
#
# The process is uid 0 in the container, because Docker gives the
# capabilities of --cap-add to uid 0 only: a non-root user would need
# file capabilities on the binary, and with those the kernel refuses to
# run it at all unless every capability they name is granted. With
# --cap-drop ALL that uid 0 has no other capability: it cannot read a file
# its permission bits deny it (no CAP_DAC_OVERRIDE), so the mounted config
# (and api_token_file) must be readable by uid 0 or gid 0 through their
# bits, such as root-owned 0600 or 0640 as a package installs them.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/director ./cmd/director \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/director /usr/local/bin/director
# state_file's default directory (overrides and the managed services);
# mount a volume here to keep it across containers.
COPY --from=build /out/state /var/lib/director
VOLUME /var/lib/director
USER 0:0
EXPOSE 9410
ENTRYPOINT ["/usr/local/bin/director"]
CMD ["run", "/etc/director/director.toml"]
