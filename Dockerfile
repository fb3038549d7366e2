# wharf's own image: a static-enough binary on a distroless base.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/wharf /wharf

FROM gcr.io/distroless/cc-debian12
COPY --from=build /wharf /usr/local/bin/wharf
ENTRYPOINT ["/usr/local/bin/wharf"]
