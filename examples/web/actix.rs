//! actix-web: a repository of `#[db_op]`s as app data (`web::Data`), handlers that take it
//! with the `Path` and `Json` extractors, and `DbError` turned into HTTP answers (404, 409,
//! 503 with `Retry-After`, 504) by one `ResponseError` impl.
//!
//! ```sh
//! cargo run -p sqlx-resilience-web-examples --example web_actix    # serves on 127.0.0.1:3000
//! curl 127.0.0.1:3000/estates/1
//! curl -X POST -H 'content-type: application/json' -d '{"tonnes": 2.5}' \
//!     127.0.0.1:3000/estates/1/harvests
//! ```
//!
//! `ADDR=127.0.0.1:8080` serves elsewhere. The database is the test kit's throwaway
//! PostgreSQL (or `DATABASE_URL`), removed on exit. actix-web runs on tokio, so the runtime,
//! built once in `main`, serves every worker. `cargo test -p sqlx-resilience-web-examples`
//! starts the service and checks its answers over real HTTP (the tests at the end).

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx_resilience::{DbError, Error, FailureKind, HasRuntime, Runtime, Tx, db_op};
use sqlx_resilience_testkit::{PgServer, TestDb};

sqlx_resilience::policies! {
    pool http { max = 4, min = 1, acquire_timeout = "2s" }
    breaker estates { failures = 5, within = "30s", open_for = "10s" }
    retry transient { attempts = 3, base = "50ms", max_delay = "1s" }
}

/// The repository, shared by every worker as app data.
#[derive(HasRuntime)]
struct Estates {
    rt: Runtime,
}

impl Estates {
    #[db_op(pool = "http", tx, timeout = "10s")]
    async fn setup(&self, tx: &mut Tx<'_>) -> Result<(), DbError> {
        sqlx::raw_sql(
            "create table estate (id bigint primary key, name text not null); \
             create table harvest (id bigserial primary key, \
                 estate bigint not null references estate, tonnes float8 not null); \
             insert into estate values (1, 'Sungai Ara'), (2, 'Bukit Merah'); \
             insert into harvest (estate, tonnes) values (1, 4.5), (1, 3.0), (2, 7.25)",
        )
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// One estate with its total: a missing one is `FailureKind::NotFound` (sqlx's
    /// `RowNotFound`), which the handler answers with 404.
    #[db_op(
        pool = "http",
        timeout = "2s",
        retry = "transient",
        breaker = "estates",
        read_only
    )]
    async fn estate(&self, conn: &mut PgConnection, id: i64) -> Result<EstateView, DbError> {
        let (name, tonnes): (String, f64) = sqlx::query_as(
            "select e.name, coalesce(sum(h.tonnes), 0) from estate e \
             left join harvest h on h.estate = e.id where e.id = $1 group by e.name",
        )
        .bind(id)
        .fetch_one(conn)
        .await?;
        Ok(EstateView { id, name, tonnes })
    }

    /// Records a harvest: an unknown estate breaks the foreign key, `FailureKind::Constraint`,
    /// answered with 409.
    #[db_op(pool = "http", tx, timeout = "2s")]
    async fn record(&self, tx: &mut Tx<'_>, estate: i64, tonnes: f64) -> Result<i64, DbError> {
        let id =
            sqlx::query_scalar("insert into harvest (estate, tonnes) values ($1, $2) returning id")
                .bind(estate)
                .bind(tonnes)
                .fetch_one(&mut **tx)
                .await?;
        Ok(id)
    }
}

#[derive(Debug, Serialize)]
struct EstateView {
    id: i64,
    name: String,
    tonnes: f64,
}

#[derive(Debug, Deserialize)]
struct NewHarvest {
    tonnes: f64,
}

#[derive(Debug, Serialize)]
struct Recorded {
    id: i64,
}

/// `DbError` as an HTTP answer. A newtype: neither `ResponseError` nor `DbError` is this
/// crate's, so the impl needs a type that is.
#[derive(Debug)]
struct ApiError(DbError);

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError(e)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.0.kind() {
            FailureKind::NotFound => StatusCode::NOT_FOUND,
            FailureKind::Constraint => StatusCode::CONFLICT,
            // The database is failing or busy: the client may come back later.
            FailureKind::BreakerOpen
            | FailureKind::Unavailable
            | FailureKind::Backpressure
            | FailureKind::Rejected
            | FailureKind::ServerShutdown
            | FailureKind::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            FailureKind::Deadline => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // The whole error (op, pool, what to do) goes to the log; the client gets the kind.
        if status.is_server_error() {
            eprintln!("{status}: {}", self.0);
        }
        let mut response = HttpResponse::build(status);
        if let Error::BreakerOpen {
            retry_after: Some(after),
            ..
        } = &self.0
        {
            let secs = after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&secs) {
                response.insert_header((header::RETRY_AFTER, value));
            }
        }
        response.json(ErrorBody {
            error: self.0.kind().to_string(),
        })
    }
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: String,
}

async fn get_estate(
    estates: web::Data<Estates>,
    id: web::Path<i64>,
) -> Result<web::Json<EstateView>, ApiError> {
    Ok(web::Json(estates.estate(id.into_inner()).await?))
}

async fn post_harvest(
    estates: web::Data<Estates>,
    estate: web::Path<i64>,
    new: web::Json<NewHarvest>,
) -> Result<HttpResponse, ApiError> {
    let id = estates.record(estate.into_inner(), new.tonnes).await?;
    Ok(HttpResponse::Created().json(Recorded { id }))
}

fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/estates/{id}", web::get().to(get_estate))
        .route("/estates/{id}/harvests", web::post().to(post_harvest));
}

/// A fresh database on the test kit's server, the runtime on it, and the schema.
async fn start() -> Result<(TestDb, web::Data<Estates>), Box<dyn std::error::Error>> {
    let db = PgServer::shared().await?.create_database().await?;
    let rt = Runtime::builder()
        .url(db.url())
        .env_prefix("DB")
        .build()
        .await?;
    let estates = web::Data::new(Estates { rt });
    estates.setup().await?;
    Ok((db, estates))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_db, estates) = start().await?;
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let data = estates.clone();
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .bind(&addr)?
        .run();
    println!("serving on http://{addr} (ctrl-c stops)");
    server.await?; // actix-web stops on ctrl-c
    estates
        .rt
        .shutdown(std::time::Duration::from_secs(5))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 request on a fresh connection, read to the end (`Connection: close`):
    /// status and body. Written out because two plain requests need no HTTP client crate.
    async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let status = raw[9..12].parse().expect("a status line");
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_owned())
    }

    #[actix_web::test]
    async fn serves_estates_and_answers_failures_with_their_status() {
        let (_db, estates) = start().await.unwrap();
        let server =
            HttpServer::new(move || App::new().app_data(estates.clone()).configure(routes))
                .workers(1)
                .bind("127.0.0.1:0")
                .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);

        let (status, body) = request(addr, "GET", "/estates/1", "").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, r#"{"id":1,"name":"Sungai Ara","tonnes":7.5}"#);

        let (status, body) =
            request(addr, "POST", "/estates/1/harvests", r#"{"tonnes":2.5}"#).await;
        assert_eq!(status, 201, "{body}");
        let (_, body) = request(addr, "GET", "/estates/1", "").await;
        assert_eq!(body, r#"{"id":1,"name":"Sungai Ara","tonnes":10.0}"#);

        let (status, body) = request(addr, "GET", "/estates/9", "").await;
        assert_eq!(
            (status, body.as_str()),
            (404, r#"{"error":"row not found"}"#)
        );

        let (status, body) = request(addr, "POST", "/estates/9/harvests", r#"{"tonnes":1}"#).await;
        assert_eq!(
            (status, body.as_str()),
            (409, r#"{"error":"constraint violation"}"#)
        );
        handle.stop(true).await;
    }
}
