//! Ops with a nested form (`nested = name`), called inside another op's transaction; queries
//! take the transaction as sqlx users write it, `&mut *tx`.
#![deny(warnings)]

use sqlx::PgConnection;
use sqlx_resilience::{DbError, HasRuntime, Runtime, Tx, db_op};

sqlx_resilience::policies! {
    pool http { max = 20 }
    retry contention { attempts = 5 }
}

#[derive(HasRuntime)]
pub struct Orders {
    rt: Runtime,
}

impl Orders {
    #[db_op(tx, retry = contention, nested = create_in)]
    pub async fn create(&self, conn: &mut PgConnection, id: i64) -> Result<(), DbError> {
        sqlx::query("insert into orders values ($1)").bind(id).execute(&mut *conn).await?;
        Ok(())
    }

    #[db_op(tx, isolation = "serializable", retry = contention)]
    pub async fn place(&self, tx: &mut Tx<'_>, id: i64) -> Result<(), DbError> {
        sqlx::query("select 1").execute(&mut *tx).await?;
        self.create_in(tx, id).await?;
        add_line_in(&self.rt, &mut **tx, id, "first".to_owned()).await
    }
}

/// A free function with a nested form.
#[db_op(pool = http, nested = add_line_in)]
pub async fn add_line(
    rt: &Runtime,
    mut conn: &mut PgConnection,
    id: i64,
    note: String,
) -> Result<(), DbError> {
    let c: &mut PgConnection = &mut conn;
    sqlx::query("insert into lines values ($1, $2)").bind(id).bind(note).execute(c).await?;
    Ok(())
}

fn main() {
    let _ = |orders: &'static Orders| async move {
        orders.place(1).await?;
        orders.create(2).await?;
        add_line(&orders.rt, 3, "solo".to_owned()).await
    };
}
