# Registry DB: multi-stage image. Build: `docker build -t registry-db .`
# Run (MongoDB required: the embedded default database is for development, not for this image):
#   docker run -p 8080:8080 -e MONGODB_URI=mongodb://... -e CREDENTIALS_KEY=$(openssl rand -base64 32) \
#              -e API_KEYS=admin:$(openssl rand -hex 24) registry-db

# --- build: all dependencies, generated types, TypeScript compiled into dist/ ---
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm ci` runs the prepare script (type generation from schemas/), so its inputs come first.
COPY scripts/gen-types.mjs ./scripts/
COPY schemas ./schemas
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and dist/ only, non-root ---
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The status page (GET /): plain ES modules and CSS, served as they are (its chart library, uplot, is a
# production dependency installed above).
COPY ui ./ui
# uid/gid 1000 is the image's `node` user; numeric so that Kubernetes can verify runAsNonRoot.
RUN mkdir -p /data && chown 1000:1000 /data
USER 1000:1000
VOLUME ["/data"]
EXPOSE 8080
# No curl in the slim image: node itself asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "require('http').get({host:'127.0.0.1',port:process.env.PORT||8080,path:'/healthz',timeout:4000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
# node is PID 1 and handles SIGTERM itself: drains requests, stops the scheduler, closes the database.
STOPSIGNAL SIGTERM
# The old-space cap keeps V8 from growing a heap of mostly garbage: the live heap of a sweep of 1,000 is
# about 30 MB, yet without a cap V8 let it reach 130 MB before collecting (RSS 190-220 MB); with 160 MB the
# sweep peaks near 155-165 MB RSS. The cap alone also shrank the young generation, so request garbage was
# promoted and full GCs ran every 0.5 s under load (21 vs 6 in the same read test); a 16 MB semi-space keeps
# it where it was. At 100,000 entries the catalog view (SPEC 13) holds ~110 MB: under 160 MB the heap stood at
# 148 of 161 MB and GCs halved GET throughput, so the cap is 256 MB (idle RSS measured in docs/benchmark.md).
# Same flags as `npm start` (package.json), which the benchmark reads.
CMD ["node", "--max-old-space-size=256", "--max-semi-space-size=16", "dist/src/main.js"]
