# syntax=docker/dockerfile:1
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/riskgate ./cmd/riskgate

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/riskgate /usr/local/bin/riskgate
COPY config.example.yaml /etc/riskgate/config.yaml
USER nonroot:nonroot
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/riskgate"]
CMD ["serve", "--config", "/etc/riskgate/config.yaml"]
