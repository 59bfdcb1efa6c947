"""Parameter widgets built from an operation's JSON Schema (``params_schema`` from the server)."""

from __future__ import annotations

from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

INT_LIMIT = 2**31 - 1
AUTO = "auto"


def _types(prop: dict) -> set:
    kind = prop.get("type", "string")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if prop.get("nullable"):
        kinds.add("null")
    return kinds


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


class ParamField:
    """One parameter: its widget and how to read and set a JSON value through it."""

    def __init__(self, name: str, prop: dict):
        self.name = name
        self.prop = prop
        kinds = _types(prop)
        self.nullable = "null" in kinds
        if prop.get("enum"):
            self.widget, self.kind = self._combo(prop["enum"]), "enum"
        elif "boolean" in kinds:
            self.widget, self.kind = QCheckBox(), "boolean"
        elif "integer" in kinds:
            self.widget, self.kind = self._spin(QSpinBox(), 1), "integer"
        elif "number" in kinds:
            self.widget, self.kind = self._spin(QDoubleSpinBox(), None), "number"
        else:
            self.widget, self.kind = QLineEdit(), "string"
        self.widget.setObjectName(f"param_{name}")
        if prop.get("description"):
            self.widget.setToolTip(prop["description"])
        self.set(prop.get("default"))

    def _combo(self, options) -> QComboBox:
        combo = QComboBox()
        for option in options:
            combo.addItem(str(option), option)
        return combo

    def _spin(self, spin, step):
        low = self.prop.get("minimum", -INT_LIMIT if step else -1e9)
        high = self.prop.get("maximum", INT_LIMIT if step else 1e9)
        if step is None:
            spin.setDecimals(2)
            step = 0.05 if high - low <= 2 else 0.5
        else:
            low, high = max(int(low), -INT_LIMIT + 1), min(int(high), INT_LIMIT)
        spin.setSingleStep(step)
        if self.nullable:
            low -= step
            spin.setSpecialValueText(AUTO)
        spin.setRange(low, high)
        return spin

    def value(self):
        """The JSON value, or None for "auto" (leave it to the server)."""
        w = self.widget
        if self.kind == "enum":
            return w.currentData()
        if self.kind == "boolean":
            return w.isChecked()
        if self.kind in ("integer", "number"):
            if self.nullable and w.value() == w.minimum():
                return None
            return w.value()
        return w.text()

    def set(self, value) -> None:
        w = self.widget
        if self.kind == "enum":
            index = w.findData(value)
            w.setCurrentIndex(max(index, 0))
        elif self.kind == "boolean":
            w.setChecked(bool(value))
        elif self.kind in ("integer", "number"):
            w.setValue(w.minimum() if value is None else value)
        else:
            w.setText("" if value is None else str(value))


class ParamsForm(QWidget):
    """A form of the operation's parameters, except those the docker shows itself."""

    def __init__(self, properties: dict, skip=(), parent=None):
        super().__init__(parent)
        self.fields: dict[str, ParamField] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for name, prop in properties.items():
            if name in skip or _types(prop) & {"array", "object"}:
                continue  # lists and objects (control layers) have no form widget
            field = ParamField(name, prop)
            self.fields[name] = field
            layout.addRow(prop.get("title") or _label(name), field.widget)

    def values(self) -> dict:
        """Parameter values to send; "auto" ones are left out."""
        out = {}
        for name, field in self.fields.items():
            value = field.value()
            if value is not None:
                out[name] = value
        return out

    def set_values(self, values: dict) -> None:
        for name, value in values.items():
            if name in self.fields:
                self.fields[name].set(value)
