// Tabs by the WAI-ARIA tabs pattern: one tab stop per tablist (roving tabindex), Left and
// Right (and Home, End) move between tabs and select them, each tab shows its panel.

/** Wires the `[role=tablist]` element; the first tab is selected. `onShow(panelId)` runs
 * each time a panel is shown. Returns {select(tabId)}. */
export function setUpTabs(tablist, { onShow = () => {} } = {}) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  const panelOf = (tab) => document.getElementById(tab.getAttribute("aria-controls"));

  function select(tab, { focus = false } = {}) {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
      panelOf(other).hidden = !selected;
    }
    if (focus) tab.focus();
    onShow(panelOf(tab).id);
  }

  tablist.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab && tabs.includes(tab)) select(tab);
  });

  tablist.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = {
      ArrowRight: (index + 1) % tabs.length,
      ArrowLeft: (index - 1 + tabs.length) % tabs.length,
      Home: 0,
      End: tabs.length - 1,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(tabs[moves[event.key]], { focus: true });
  });

  for (const tab of tabs) tab.type = "button";
  select(tabs[0]);
  return {
    select: (tabId) => select(tabs.find((tab) => tab.id === tabId)),
  };
}
