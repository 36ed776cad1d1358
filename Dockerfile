# syntax=docker/dockerfile:1
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/riskgate ./cmd/riskgate
# An empty directory for risk.state_file, owned by the runtime user.
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/riskgate /usr/local/bin/riskgate
COPY config.example.yaml /etc/riskgate/config.yaml
COPY --from=build --chown=nonroot:nonroot /out/state /var/lib/riskgate
VOLUME /var/lib/riskgate
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/riskgate"]
CMD ["serve", "--config", "/etc/riskgate/config.yaml"]
