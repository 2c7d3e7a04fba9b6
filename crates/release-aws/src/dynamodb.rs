//! DynamoDB: the Ledger port. One table holds ledger records and locks, keyed by pk (app#env) and sk.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus};
use release_core::ports::Ledger;
use release_core::{Error, Result};

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
}
