//! DynamoDB: the Ledger port. One table holds ledger records and locks, keyed by pk (app#env) and sk.

use std::time::Duration;

use async_trait::async_trait;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue, ScalarAttributeType, TableStatus,
};
use release_core::clock::Timestamp;
use release_core::ids::{AppName, EnvName};
use release_core::ledger::{partition_key, LockInfo, Record};
use release_core::ports::Ledger;
use release_core::{Error, Result};

/// The sort key of an environment's lock item.
const LOCK_SK: &str = "lock";

use crate::error::{build, sdk};
use crate::Aws;

impl Aws {
    async fn table_status(&self, table: &str) -> Result<Option<TableStatus>> {
        match self.dynamodb.describe_table().table_name(table).send().await {
            Ok(out) => Ok(Some(out.table().and_then(|t| t.table_status()).cloned().unwrap_or(TableStatus::Active))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(sdk("dynamodb DescribeTable", e)),
        }
    }
}

#[async_trait]
impl Ledger for Aws {
    async fn table_exists(&self, table: &str) -> Result<bool> {
        Ok(self.table_status(table).await?.is_some())
    }

    async fn create_table(&self, table: &str) -> Result<()> {
        let attr = |n: &str| build("attribute", AttributeDefinition::builder().attribute_name(n).attribute_type(ScalarAttributeType::S).build());
        let key = |n: &str, t| build("key", KeySchemaElement::builder().attribute_name(n).key_type(t).build());
        self.dynamodb
            .create_table()
            .table_name(table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| sdk("dynamodb CreateTable", e))?;
        for _ in 0..120 {
            if self.table_status(table).await? == Some(TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(Error::aws(format!("dynamodb table {table} was created but is not ACTIVE after 60s")))
    }

    async fn put_record(&self, table: &str, record: &Record) -> Result<()> {
        let item = to_item(record, partition_key(&record.app, &record.env), record.sort_key())?;
        self.dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| map_err(table, sdk("dynamodb PutItem", e)))?;
        Ok(())
    }

    async fn records(&self, table: &str, app: &AppName, env: &EnvName, limit: u32) -> Result<Vec<Record>> {
        let out = self
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rec)")
            .expression_attribute_values(":pk", AttributeValue::S(partition_key(app, env)))
            .expression_attribute_values(":rec", AttributeValue::S("rec#".into()))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| map_err(table, sdk("dynamodb Query", e)))?;
        out.items().iter().map(from_item).collect()
    }
}

/// Records and locks are serde values stored attribute by attribute, so the table stays readable in the console.
fn to_attr(v: &serde_json::Value) -> AttributeValue {
    match v {
        serde_json::Value::Null => AttributeValue::Null(true),
        serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
        serde_json::Value::Number(n) => AttributeValue::N(n.to_string()),
        serde_json::Value::String(s) => AttributeValue::S(s.clone()),
        serde_json::Value::Array(a) => AttributeValue::L(a.iter().map(to_attr).collect()),
        serde_json::Value::Object(o) => AttributeValue::M(o.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect()),
    }
}

fn from_attr(a: &AttributeValue) -> serde_json::Value {
    match a {
        AttributeValue::S(s) => s.clone().into(),
        AttributeValue::N(n) => serde_json::from_str(n).unwrap_or(serde_json::Value::Null),
        AttributeValue::Bool(b) => (*b).into(),
        AttributeValue::L(l) => l.iter().map(from_attr).collect::<Vec<_>>().into(),
        AttributeValue::M(m) => m.iter().map(|(k, v)| (k.clone(), from_attr(v))).collect::<serde_json::Map<_, _>>().into(),
        _ => serde_json::Value::Null,
    }
}

fn to_item<T: serde::Serialize>(value: &T, pk: String, sk: String) -> Result<HashMap<String, AttributeValue>> {
    let json = serde_json::to_value(value).map_err(|e| Error::internal(format!("encoding a ledger item: {e}")))?;
    let serde_json::Value::Object(obj) = json else { return Err(Error::internal("a ledger item must be an object")) };
    let mut item: HashMap<String, AttributeValue> = obj.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect();
    item.insert("pk".into(), AttributeValue::S(pk));
    item.insert("sk".into(), AttributeValue::S(sk));
    Ok(item)
}

fn from_item<T: serde::de::DeserializeOwned>(item: &HashMap<String, AttributeValue>) -> Result<T> {
    let obj: serde_json::Map<String, serde_json::Value> =
        item.iter().filter(|(k, _)| *k != "pk" && *k != "sk").map(|(k, v)| (k.clone(), from_attr(v))).collect();
    serde_json::from_value(obj.into()).map_err(|e| Error::aws(format!("a ledger item is not in the expected shape: {e}")))
}

fn table_missing(table: &str) -> Error {
    Error::not_found(format!("ledger table {table} does not exist; run `release provision --env <env>` first"))
}

fn is_conditional_failure(err: &Error) -> bool {
    err.message().contains("ConditionalCheckFailed")
}

/// A missing table is the user's to fix (provision), not an AWS failure.
fn map_err(table: &str, err: Error) -> Error {
    if err.message().contains("ResourceNotFoundException") {
        table_missing(table)
    } else {
        err
    }
}

impl Aws {
    /// Puts `item` if `condition` holds; false when it did not (someone else's lock).
    async fn conditional_put(&self, table: &str, item: HashMap<String, AttributeValue>, condition: &str, value: (&str, AttributeValue)) -> Result<bool> {
        let put = self
            .dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_values(value.0, value.1)
            .send()
            .await
            .map_err(|e| sdk("dynamodb PutItem", e));
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(map_err(table, e)),
        }
    }
}

fn lock_key(app: &AppName, env: &EnvName) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(partition_key(app, env))),
        ("sk".to_owned(), AttributeValue::S(LOCK_SK.into())),
    ])
}

#[async_trait]
impl release_core::ports::Lock for Aws {
    async fn acquire(&self, table: &str, lock: &LockInfo, now: Timestamp) -> Result<Option<LockInfo>> {
        let item = to_item(lock, partition_key(&lock.app, &lock.env), LOCK_SK.into())?;
        let now_value = AttributeValue::N(now.millis().to_string());
        if self.conditional_put(table, item, "attribute_not_exists(pk) OR expires < :now", (":now", now_value)).await? {
            return Ok(None);
        }
        let got = self
            .dynamodb
            .get_item()
            .table_name(table)
            .set_key(Some(lock_key(&lock.app, &lock.env)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| map_err(table, sdk("dynamodb GetItem", e)))?;
        match got.item() {
            Some(item) => Ok(Some(from_item(item)?)),
            // Released between the two calls: try once more.
            None => Box::pin(self.acquire(table, lock, now)).await,
        }
    }

    async fn renew(&self, table: &str, lock: &LockInfo) -> Result<bool> {
        let item = to_item(lock, partition_key(&lock.app, &lock.env), LOCK_SK.into())?;
        self.conditional_put(table, item, "release_id = :r", (":r", AttributeValue::S(lock.release_id.clone()))).await
    }

    async fn release(&self, table: &str, lock: &LockInfo) -> Result<()> {
        let del = self
            .dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(lock_key(&lock.app, &lock.env)))
            .condition_expression("release_id = :r")
            .expression_attribute_values(":r", AttributeValue::S(lock.release_id.clone()))
            .send()
            .await
            .map_err(|e| sdk("dynamodb DeleteItem", e));
        match del {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(map_err(table, e)),
        }
    }

    async fn break_lock(&self, table: &str, app: &AppName, env: &EnvName) -> Result<Option<LockInfo>> {
        let out = self
            .dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(lock_key(app, env)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| map_err(table, sdk("dynamodb DeleteItem", e)))?;
        out.attributes().map(from_item).transpose()
    }
}
