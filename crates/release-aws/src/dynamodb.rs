//! DynamoDB: the Ledger and Lock ports. One table holds ledger records (`sk = rec#…`), locks (`sk = lock`),
//! queue tickets (`sk = queue#…`) and each app's index of environments (`pk = index#<app>`), keyed by pk and sk.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, KeySchemaElement, KeyType, Put, ReturnValue, ScalarAttributeType, TableStatus,
    TransactWriteItem,
};
use release_core::model::error::{Aws as AwsError, Cause, Internal, NotFound};
use release_core::model::ids::{AppName, EnvName, ReleaseId};
use release_core::model::ledger::{index_key, partition_key, LockInfo, Record, Ticket};
use release_core::ports::{Expect, Ledger, LockWrite};
use release_core::{Error, Result};

use crate::error::{build, sdk};
use crate::Aws;

/// The sort key of an environment's lock item.
const LOCK_SK: &str = "lock";

impl Aws {
    async fn table_status(&self, table: &str) -> Result<Option<TableStatus>> {
        match self.dynamodb.describe_table().table_name(table).send().await {
            Ok(out) => Ok(Some(out.table().and_then(|t| t.table_status()).cloned().unwrap_or(TableStatus::Active))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(sdk("dynamodb DescribeTable", e)),
        }
    }
}

/// A missing table is the user's to fix (provision), not an AWS failure.
fn table_error(table: &str, err: Error) -> Error {
    if err.is(Cause::Missing) {
        Error::from(NotFound::LedgerTable { table: table.to_owned() }).with_cause(Cause::Missing)
    } else {
        err
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
        Err(AwsError::TableNotActive { table: table.to_owned(), waited: Duration::from_secs(60) }.into())
    }

    async fn put_record(&self, table: &str, record: &Record, expect: Expect) -> Result<bool> {
        let item = to_item(record, partition_key(&record.app, &record.env), record.sort_key())?;
        let put = self.dynamodb.put_item().table_name(table).set_item(Some(item));
        let put = match expect {
            Expect::Any => put,
            Expect::New => put.condition_expression("attribute_not_exists(pk)"),
            Expect::Holder(h) => put.condition_expression("holder = :h").expression_attribute_values(":h", AttributeValue::S(h.to_string())),
        };
        match put.send().await.map_err(|e| sdk("dynamodb PutItem", e)) {
            Ok(_) => Ok(true),
            Err(e) if e.is(Cause::ConditionFailed) => Ok(false),
            Err(e) => Err(table_error(table, e)),
        }
    }

    async fn records(&self, table: &str, app: &AppName, env: &EnvName, limit: Option<u32>) -> Result<Vec<Record>> {
        let query = self
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :rec)")
            .expression_attribute_values(":pk", AttributeValue::S(partition_key(app, env)))
            .expression_attribute_values(":rec", AttributeValue::S("rec#".into()))
            .scan_index_forward(false)
            // A record written a moment ago (by this run or another) must be seen.
            .consistent_read(true)
            .set_limit(limit.map(|l| i32::try_from(l).unwrap_or(i32::MAX)));
        let mut items = query.into_paginator().items().send();
        let mut out = Vec::new();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| table_error(table, sdk("dynamodb Query", e)))?;
            out.push(from_item(&item)?);
            if limit.is_some_and(|l| out.len() >= l as usize) {
                break;
            }
        }
        Ok(out)
    }

    async fn index_env(&self, table: &str, app: &AppName, env: &EnvName) -> Result<()> {
        self.dynamodb
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(index_key(app)))
            .item("sk", AttributeValue::S(format!("env#{env}")))
            .item("env", AttributeValue::S(env.to_string()))
            .send()
            .await
            .map_err(|e| table_error(table, sdk("dynamodb PutItem", e)))?;
        Ok(())
    }

    async fn indexed_envs(&self, table: &str, app: &AppName) -> Result<Vec<EnvName>> {
        let query = self
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(index_key(app)))
            .consistent_read(true);
        let items = query.into_paginator().items().send().try_collect().await.map_err(|e| table_error(table, sdk("dynamodb Query", e)))?;
        Ok(items.iter().filter_map(|i| i.get("env")?.as_s().ok()).filter_map(|e| EnvName::parse(e).ok()).collect())
    }

    async fn put_record_with_lock(&self, table: &str, record: &Record, holder: &ReleaseId, lock: &LockInfo, write: LockWrite) -> Result<bool> {
        let item = to_item(record, partition_key(&record.app, &record.env), record.sort_key())?;
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("holder = :h")
            .expression_attribute_values(":h", AttributeValue::S(holder.to_string()))
            .build();
        let ours = ("release_id = :r", ":r", AttributeValue::S(lock.release_id.to_string()));
        let lock_write = match write {
            LockWrite::Renew => TransactWriteItem::builder().put(build(
                "lock put",
                Put::builder()
                    .table_name(table)
                    .set_item(Some(to_item(lock, partition_key(&lock.app, &lock.env), LOCK_SK.into())?))
                    .condition_expression(ours.0)
                    .expression_attribute_values(ours.1, ours.2)
                    .build(),
            )?),
            LockWrite::Release => TransactWriteItem::builder().delete(build(
                "lock delete",
                Delete::builder()
                    .table_name(table)
                    .set_key(Some(lock_key(&lock.app, &lock.env)))
                    .condition_expression(ours.0)
                    .expression_attribute_values(ours.1, ours.2)
                    .build(),
            )?),
        };
        let sent = self
            .dynamodb
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(build("record put", put)?).build())
            .transact_items(lock_write.build())
            .send()
            .await
            .map_err(|e| sdk("dynamodb TransactWriteItems", e));
        match sent {
            Ok(_) => Ok(true),
            // A condition failed (TransactionCanceledException): nothing was written.
            Err(e) if e.is(Cause::ConditionFailed) => Ok(false),
            Err(e) => Err(table_error(table, e)),
        }
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
    let json = serde_json::to_value(value).map_err(|e| Error::from(Internal::Encode { what: "a ledger item", error: e.to_string() }))?;
    let serde_json::Value::Object(obj) = json else { return Err(Internal::Invariant { what: "a ledger item must be an object".into() }.into()) };
    let mut item: HashMap<String, AttributeValue> = obj.iter().map(|(k, v)| (k.clone(), to_attr(v))).collect();
    item.insert("pk".into(), AttributeValue::S(pk));
    item.insert("sk".into(), AttributeValue::S(sk));
    Ok(item)
}

fn from_item<T: serde::de::DeserializeOwned>(item: &HashMap<String, AttributeValue>) -> Result<T> {
    let obj: serde_json::Map<String, serde_json::Value> =
        item.iter().filter(|(k, _)| *k != "pk" && *k != "sk").map(|(k, v)| (k.clone(), from_attr(v))).collect();
    serde_json::from_value(obj.into()).map_err(|e| AwsError::LedgerItem { error: e.to_string() }.into())
}

impl Aws {
    /// Puts `item` if `condition` holds; false when it did not (someone else's lock).
    async fn conditional_put(&self, table: &str, item: HashMap<String, AttributeValue>, condition: &str, values: &[(&str, AttributeValue)]) -> Result<bool> {
        let values: HashMap<String, AttributeValue> = values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let put = self
            .dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(condition)
            // DynamoDB refuses an empty map of values.
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await
            .map_err(|e| sdk("dynamodb PutItem", e));
        match put {
            Ok(_) => Ok(true),
            Err(e) if e.is(Cause::ConditionFailed) => Ok(false),
            Err(e) => Err(table_error(table, e)),
        }
    }
}

fn lock_key(app: &AppName, env: &EnvName) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), AttributeValue::S(partition_key(app, env))), ("sk".to_owned(), AttributeValue::S(LOCK_SK.into()))])
}

#[async_trait]
impl release_core::ports::Lock for Aws {
    async fn acquire(&self, table: &str, lock: &LockInfo, over: Option<&LockInfo>) -> Result<Option<LockInfo>> {
        let item = to_item(lock, partition_key(&lock.app, &lock.env), LOCK_SK.into())?;
        let taken = match over {
            None => self.conditional_put(table, item, "attribute_not_exists(pk)", &[]).await?,
            // The very lease the taker watched lapse: its holder, version and expiry (a lock written before
            // versions has no `lease`; its expiry changed at every renewal).
            Some(seen) => {
                let condition = "attribute_not_exists(pk) OR (release_id = :r AND expires = :e AND (lease = :v OR attribute_not_exists(lease)))";
                let values = [
                    (":r", AttributeValue::S(seen.release_id.to_string())),
                    (":e", AttributeValue::N(seen.expires.millis().to_string())),
                    (":v", AttributeValue::N(seen.lease.to_string())),
                ];
                self.conditional_put(table, item, condition, &values).await?
            }
        };
        if taken {
            return Ok(None);
        }
        match self.holder(table, &lock.app, &lock.env).await? {
            Some(held) => Ok(Some(held)),
            // Released between the two calls: try once more.
            None => Box::pin(self.acquire(table, lock, over)).await,
        }
    }

    async fn renew(&self, table: &str, lock: &LockInfo) -> Result<bool> {
        let item = to_item(lock, partition_key(&lock.app, &lock.env), LOCK_SK.into())?;
        self.conditional_put(table, item, "release_id = :r", &[(":r", AttributeValue::S(lock.release_id.to_string()))]).await
    }

    async fn release(&self, table: &str, lock: &LockInfo) -> Result<()> {
        let del = self
            .dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(lock_key(&lock.app, &lock.env)))
            .condition_expression("release_id = :r")
            .expression_attribute_values(":r", AttributeValue::S(lock.release_id.to_string()))
            .send()
            .await
            .map_err(|e| sdk("dynamodb DeleteItem", e));
        match del {
            Ok(_) => Ok(()),
            Err(e) if e.is(Cause::ConditionFailed) => Ok(()),
            Err(e) => Err(table_error(table, e)),
        }
    }

    async fn holder(&self, table: &str, app: &AppName, env: &EnvName) -> Result<Option<LockInfo>> {
        let got = self
            .dynamodb
            .get_item()
            .table_name(table)
            .set_key(Some(lock_key(app, env)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| table_error(table, sdk("dynamodb GetItem", e)))?;
        got.item().map(from_item).transpose()
    }

    async fn break_lock(&self, table: &str, app: &AppName, env: &EnvName, seen: &ReleaseId) -> Result<bool> {
        let del = self
            .dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(lock_key(app, env)))
            .condition_expression("release_id = :r")
            .expression_attribute_values(":r", AttributeValue::S(seen.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk("dynamodb DeleteItem", e));
        match del {
            Ok(_) => Ok(true),
            Err(e) if e.is(Cause::ConditionFailed) => Ok(false),
            Err(e) => Err(table_error(table, e)),
        }
    }
}

fn ticket_key(ticket: &Ticket) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(partition_key(&ticket.app, &ticket.env))),
        ("sk".to_owned(), AttributeValue::S(ticket.sort_key())),
    ])
}

#[async_trait]
impl release_core::ports::Queue for Aws {
    async fn enqueue(&self, table: &str, ticket: &Ticket) -> Result<()> {
        let item = to_item(ticket, partition_key(&ticket.app, &ticket.env), ticket.sort_key())?;
        let put = self.dynamodb.put_item().table_name(table).set_item(Some(item)).condition_expression("attribute_not_exists(pk)").send().await;
        match put.map_err(|e| sdk("dynamodb PutItem", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is(Cause::ConditionFailed) => Err(Internal::Invariant { what: format!("queue ticket {} exists already", ticket.id) }.into()),
            Err(e) => Err(table_error(table, e)),
        }
    }

    async fn tickets(&self, table: &str, app: &AppName, env: &EnvName) -> Result<Vec<Ticket>> {
        let query = self
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :q)")
            .expression_attribute_values(":pk", AttributeValue::S(partition_key(app, env)))
            .expression_attribute_values(":q", AttributeValue::S("queue#".into()))
            .consistent_read(true);
        let items = query.into_paginator().items().send().try_collect().await.map_err(|e| table_error(table, sdk("dynamodb Query", e)))?;
        items.iter().map(from_item).collect()
    }

    async fn update_ticket(&self, table: &str, ticket: &Ticket) -> Result<bool> {
        let item = to_item(ticket, partition_key(&ticket.app, &ticket.env), ticket.sort_key())?;
        let put = self
            .dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match put.map_err(|e| sdk("dynamodb PutItem", e)) {
            Ok(_) => Ok(true),
            Err(e) if e.is(Cause::ConditionFailed) => Ok(false),
            Err(e) => Err(table_error(table, e)),
        }
    }

    async fn remove_ticket(&self, table: &str, ticket: &Ticket) -> Result<bool> {
        let del = self
            .dynamodb
            .delete_item()
            .table_name(table)
            .set_key(Some(ticket_key(ticket)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match del.map_err(|e| sdk("dynamodb DeleteItem", e)) {
            Ok(_) => Ok(true),
            Err(e) if e.is(Cause::ConditionFailed) => Ok(false),
            Err(e) => Err(table_error(table, e)),
        }
    }
}
