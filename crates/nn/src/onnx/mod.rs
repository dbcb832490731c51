//! ONNX export: a model's spec and parameter values as an ONNX model file (opset 17) that
//! onnxruntime, OpenCV's DNN module or a browser runtime can run without this project.
//!
//! The graph holds the evaluation-mode forward pass, layer for layer as [`ModelSpec::layers`]
//! lists them: `Linear` becomes `Gemm` (weight `[out, in]`, `transB = 1`), `Conv2d` becomes
//! `Conv` (stride, symmetric `pads`), `ReLU` `Relu`, `MaxPool2d` `MaxPool`, `Flatten`
//! `Flatten` (axis 1). Dropout is the identity in evaluation mode and is left out.
//!
//! - Input `input`, float32: `[batch, features]` for an MLP, `[batch, C, H, W]` for a CNN
//!   (a flat row of C*H*W values as the data sets hold it is that array reshaped, channel
//!   first, row-major). `batch` is a named, free dimension.
//! - Output `logits` `[batch, classes]`, or with [`OnnxOutput::Probabilities`]
//!   `probabilities`: `Softmax(logits / T)` over the classes (`Div` by `T` when T is not 1).
//! - Initializers carry the checkpoint names (`0.weight`, `0.bias`, ...), so the file's
//!   weights read as the safetensors checkpoint's. The metadata holds the spec text
//!   (`darkknowledge.spec`) and, for probabilities, the temperature.

pub mod proto;

use prost::Message;

use crate::error::{Result, config_error};
use crate::spec::{LayerSpec, ModelSpec};
use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The operator set the graph is written for.
pub const OPSET: i64 = 17;
/// ONNX IR version 8 is the one of opset 17.
const IR_VERSION: i64 = 8;
/// Name of the graph input.
pub const INPUT_NAME: &str = "input";
/// Name of the graph output without softmax.
pub const LOGITS_NAME: &str = "logits";
/// Name of the graph output with softmax.
pub const PROBABILITIES_NAME: &str = "probabilities";
/// Name of the free batch dimension of input and output.
pub const BATCH_DIM: &str = "batch";

/// What the exported graph returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OnnxOutput {
    /// The logits `[batch, classes]`, named `logits`.
    Logits,
    /// `Softmax(logits / temperature)`, named `probabilities`.
    Probabilities { temperature: f32 },
}

impl OnnxOutput {
    /// The graph output's name.
    pub fn name(&self) -> &'static str {
        match self {
            OnnxOutput::Logits => LOGITS_NAME,
            OnnxOutput::Probabilities { .. } => PROBABILITIES_NAME,
        }
    }
}

/// The ONNX model of `spec` with `values` (one vector per entry of
/// [`ModelSpec::parameters`]), serialized.
pub fn to_onnx(spec: &ModelSpec, values: &[Vec<f32>], output: OnnxOutput) -> Result<Vec<u8>> {
    Ok(model_proto(spec, values, output)?.encode_to_vec())
}

/// The ONNX model of `spec` with `values`, as a message.
pub fn model_proto(
    spec: &ModelSpec,
    values: &[Vec<f32>],
    output: OnnxOutput,
) -> Result<ModelProto> {
    spec.check_parameter_values(values)?;
    let mut metadata = vec![entry(crate::checkpoint::SPEC_KEY, spec.text())];
    if let OnnxOutput::Probabilities { temperature } = output {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(config_error(format!(
                "softmax temperature {temperature}: expected a finite number above 0"
            )));
        }
        metadata.push(entry("darkknowledge.temperature", &temperature.to_string()));
    }
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: OPSET,
        }],
        producer_name: "darkknowledge".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!("model `{spec}`, evaluation mode (no dropout)"),
        graph: Some(graph(spec, values, output)),
        metadata_props: metadata,
    })
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: key.into(),
        value: value.into(),
    }
}

/// The nodes of one graph, each reading the previous node's output.
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    last: String,
}

impl Builder {
    /// Append `op` reading the last output and `extra` inputs; its output is `output`.
    fn push(&mut self, op: &str, output: String, extra: &[&str], attribute: Vec<AttributeProto>) {
        let mut input = vec![self.last.clone()];
        input.extend(extra.iter().map(|s| s.to_string()));
        self.nodes.push(NodeProto {
            input,
            output: vec![output.clone()],
            name: output.clone(),
            op_type: op.into(),
            attribute,
        });
        self.last = output;
    }

    fn constant(&mut self, name: &str, dims: &[usize], values: &[f32]) {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: proto::DATA_TYPE_FLOAT,
            name: name.into(),
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        });
    }
}

fn graph(spec: &ModelSpec, values: &[Vec<f32>], output: OnnxOutput) -> GraphProto {
    let mut b = Builder {
        nodes: Vec::new(),
        initializers: Vec::new(),
        last: INPUT_NAME.into(),
    };
    let params = spec.parameters();
    let mut next_param = 0;
    for (index, layer) in spec.layers().iter().enumerate() {
        let out = format!("{index}.{}", layer.torch_name());
        let mut weights = || {
            let (w, bias) = (&params[next_param], &params[next_param + 1]);
            b.constant(&w.name, &w.shape, &values[next_param]);
            b.constant(&bias.name, &bias.shape, &values[next_param + 1]);
            next_param += 2;
            [w.name.clone(), bias.name.clone()]
        };
        match *layer {
            LayerSpec::Linear { .. } => {
                let [w, bias] = weights();
                b.push("Gemm", out, &[&w, &bias], vec![int("transB", 1)]);
            }
            LayerSpec::Conv2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let [w, bias] = weights();
                let attributes = vec![
                    ints("kernel_shape", &[kernel; 2]),
                    ints("strides", &[stride; 2]),
                    ints("pads", &[padding; 4]),
                ];
                b.push("Conv", out, &[&w, &bias], attributes);
            }
            LayerSpec::Relu => b.push("Relu", out, &[], vec![]),
            LayerSpec::MaxPool2d { kernel, stride } => {
                let attributes = vec![
                    ints("kernel_shape", &[kernel; 2]),
                    ints("strides", &[stride; 2]),
                ];
                b.push("MaxPool", out, &[], attributes);
            }
            LayerSpec::Flatten => b.push("Flatten", out, &[], vec![int("axis", 1)]),
            LayerSpec::Dropout { .. } => {}
        }
    }
    finish_output(&mut b, output);
    let mut input_shape = vec![None];
    input_shape.extend(spec.input_shape().iter().map(|&d| Some(d)));
    GraphProto {
        node: b.nodes,
        name: spec.text().into(),
        initializer: b.initializers,
        input: vec![value_info(INPUT_NAME, &input_shape)],
        output: vec![value_info(output.name(), &[None, Some(spec.classes())])],
    }
}

/// Name the last node's output `logits`; add the tempered softmax after it when asked.
fn finish_output(b: &mut Builder, output: OnnxOutput) {
    let last = b.nodes.last_mut().expect("a spec ends in a Linear layer");
    last.output = vec![LOGITS_NAME.into()];
    last.name = LOGITS_NAME.into();
    b.last = LOGITS_NAME.into();
    if let OnnxOutput::Probabilities { temperature } = output {
        if temperature != 1.0 {
            b.constant("temperature", &[], &[temperature]);
            b.push("Div", "scaled_logits".into(), &["temperature"], vec![]);
        }
        b.push(
            "Softmax",
            PROBABILITIES_NAME.into(),
            &[],
            vec![int("axis", -1)],
        );
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: proto::ATTRIBUTE_INT,
        i: value,
        ..Default::default()
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: proto::ATTRIBUTE_INTS,
        ints: values.iter().map(|&v| v as i64).collect(),
        ..Default::default()
    }
}

/// A float tensor's name and shape; `None` is the free `batch` dimension.
fn value_info(name: &str, shape: &[Option<usize>]) -> ValueInfoProto {
    use proto::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = shape
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(n) => Value::DimValue(*n as i64),
                None => Value::DimParam(BATCH_DIM.into()),
            }),
        })
        .collect();
    let tensor = proto::type_proto::Tensor {
        elem_type: proto::DATA_TYPE_FLOAT,
        shape: Some(TensorShapeProto { dim }),
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(proto::type_proto::Value::TensorType(tensor)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::he_normal;

    fn decoded(spec: &ModelSpec, output: OnnxOutput) -> ModelProto {
        let bytes = to_onnx(spec, &he_normal(spec, 4), output).unwrap();
        ModelProto::decode(bytes.as_slice()).unwrap()
    }

    #[test]
    fn a_cnn_becomes_conv_pool_flatten_gemm_without_dropout() {
        let spec = ModelSpec::parse("1x6x6-c3k3-p2-d0.5-f5-4").unwrap();
        let model = decoded(&spec, OnnxOutput::Logits);
        assert_eq!(model.opset_import[0].version, OPSET);
        let graph = model.graph.unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            ["Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"]
        );
        assert_eq!(graph.node.last().unwrap().output, ["logits"]);
        assert_eq!(graph.node[0].input, ["input", "0.weight", "0.bias"]);
        assert_eq!(graph.node[0].attribute[2].ints, [1, 1, 1, 1]);
        let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "0.weight", "0.bias", "5.weight", "5.bias", "7.weight", "7.bias"
            ]
        );
        assert_eq!(graph.initializer[0].dims, [3, 1, 3, 3]);
        assert_eq!(graph.initializer[2].raw_data.len(), 4 * 5 * 27);
        let dims = |v: &ValueInfoProto| match &v.r#type.as_ref().unwrap().value {
            Some(proto::type_proto::Value::TensorType(t)) => t.shape.clone().unwrap().dim.len(),
            None => 0,
        };
        assert_eq!(dims(&graph.input[0]), 4);
        assert_eq!(dims(&graph.output[0]), 2);
    }

    #[test]
    fn the_softmax_divides_by_the_temperature_only_when_it_is_not_one() {
        let spec = ModelSpec::parse("5-3").unwrap();
        let ops = |t: f32| -> Vec<String> {
            let output = OnnxOutput::Probabilities { temperature: t };
            let graph = decoded(&spec, output).graph.unwrap();
            assert_eq!(graph.output[0].name, "probabilities");
            graph.node.iter().map(|n| n.op_type.clone()).collect()
        };
        assert_eq!(ops(2.0), ["Gemm", "Div", "Softmax"]);
        assert_eq!(ops(1.0), ["Gemm", "Softmax"]);
        let bad = OnnxOutput::Probabilities { temperature: 0.0 };
        let message = to_onnx(&spec, &he_normal(&spec, 1), bad).unwrap_err();
        assert!(
            message
                .to_string()
                .contains("expected a finite number above 0")
        );
    }

    #[test]
    fn values_of_the_wrong_size_are_refused() {
        let spec = ModelSpec::parse("5-3").unwrap();
        let mut values = he_normal(&spec, 1);
        values[0].pop();
        let message = to_onnx(&spec, &values, OnnxOutput::Logits).unwrap_err();
        assert!(message.to_string().contains("0.weight"), "{message}");
    }
}
