# wharf's own image.
#
#   docker build .                  # from source (the last stage, the default)
#   docker buildx build --target release --platform linux/amd64,linux/arm64 .
#                                   # from the release workflow's static binaries, placed at
#                                   # image-bin/<arch>/wharf (what .github/workflows/release.yml does)

FROM gcr.io/distroless/static-debian12 AS release
ARG TARGETARCH
COPY image-bin/${TARGETARCH}/wharf /usr/local/bin/wharf
ENTRYPOINT ["/usr/local/bin/wharf"]

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/wharf /wharf

FROM gcr.io/distroless/cc-debian12
COPY --from=build /wharf /usr/local/bin/wharf
ENTRYPOINT ["/usr/local/bin/wharf"]
