//! Plugin self-description.

/// What a plugin says about itself. The export macro pre-fills name, version and
/// description from the plugin's `Cargo.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PluginInfo {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// One line saying what it does.
    pub description: String,
    /// Subscribed actions; empty means every action.
    pub actions: Vec<String>,
    /// JSON Schema of the configuration, or empty.
    pub config_schema: String,
}

impl PluginInfo {
    /// Info with a name and version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            ..Default::default()
        }
    }

    /// Set the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Subscribe to these actions (the host sends no others).
    pub fn actions<I, S>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// Set the configuration's JSON Schema.
    pub fn config_schema(mut self, schema: impl Into<String>) -> Self {
        self.config_schema = schema.into();
        self
    }

    /// Set the configuration's JSON Schema, derived from the configuration type:
    /// `#[derive(Deserialize, JsonSchema)]` on it keeps the schema and what
    /// `configure` accepts one definition (doc comments become descriptions, and
    /// `#[schemars(range(min = 1))]` a field's bounds).
    /// [`crate::testing::check_config_schema`] tests the two agree.
    pub fn config_schema_of<C: schemars::JsonSchema>(self) -> Self {
        let schema = schemars::generate::SchemaSettings::draft07()
            .into_generator()
            .into_root_schema_for::<C>();
        self.config_schema(schema.to_value().to_string())
    }
}
